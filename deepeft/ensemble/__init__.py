"""Monte-Carlo ensembles of real networks: measure what the theory predicts, with error bars.

Public API:

- :func:`measure` — sample M networks from an :class:`~deepeft.core.spec.MLPSpec` (vectorised over
  the ensemble, chunked, seeded) and return ``Observables(source='ensemble')`` with jackknife errors.
- :func:`empirical_ntk` — the empirical NTK of any ``nn.Module`` ('full' | 'trace' | 'diagonal').
- :func:`compare` — theory vs measurement table with z-scores and trust flags.
- :class:`EnsembleSampler`, :func:`sample_preactivations` — the samplers themselves.
"""
from .compare import Comparison, compare  # noqa: F401
from .measure import DEFAULT_QUANTITIES, QUANTITIES, measure  # noqa: F401
from .ntk import empirical_ntk, ensemble_ntk_autograd, ntk_forward_step  # noqa: F401
from .sampler import EnsembleMemoryError, EnsembleSampler, sample_preactivations  # noqa: F401
from .training import TrainedEnsemble, train_ensemble  # noqa: F401

__all__ = ["measure", "empirical_ntk", "compare", "Comparison", "EnsembleSampler", "EnsembleMemoryError",
           "sample_preactivations", "QUANTITIES", "DEFAULT_QUANTITIES"]
