"""Batched networks: M networks with stacked parameters, forward, manual backward and empirical NTK.

:class:`BatchedMLP` (networks of an :class:`~deepeft.core.spec.MLPSpec`, used by the ensemble sampler,
the ensemble NTK and trained ensembles) and :class:`BatchedModule` (any ``nn.Module`` over a flat
(chains, P) parameter tensor, the samplers' engine) share the layers of :mod:`.layers`.
"""
from .layers import Act, Dense, Layer, Residual, Serial, affine, serial  # noqa: F401
from .mlp import BatchedMLP, Cache, spec_layers  # noqa: F401
from .module import BatchedModule  # noqa: F401
from .rng import BlockRNG, block_seed, default_rng_block  # noqa: F401
