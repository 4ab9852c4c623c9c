"""BatchedMLP: M networks of one :class:`~deepeft.core.spec.MLPSpec`, stacked (conventions: :mod:`deepeft.conventions`)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..core.device import resolve_device, resolve_dtype
from ..core.errors import ParameterError, check_int
from ..core.spec import MLPSpec
from .layers import Act, Dense, Layer, Residual, Serial
from .rng import BlockRNG, default_rng_block


def spec_layers(spec: MLPSpec) -> list[Layer]:
    """The spec as a list of L blocks, block l mapping z^(l-1) → z^(l) (z^(0) = x):
    ``Dense`` (l = 1), ``serial(Act, Dense)``, or ``Residual(serial(Act, Dense), ξ, γ)`` on skip layers."""
    ntk = spec.parameterization == "ntk"
    act = Act(spec.activation)
    out: list[Layer] = []
    for l in range(1, spec.depth + 1):
        n_in, n_out = spec.fan_in(l), spec.width(l)
        cw, cb = spec.C_W[l - 1], spec.C_b[l - 1]
        try:
            rw, rb = spec.per_parameter_rates(l)
        except ParameterError:  # 'ntk', C_b = 0, λ_b ≠ 0: the bias has no gradient (BatchedMLP.rates raises)
            rw, rb = spec.lambda_W[l - 1] / cw, math.nan
        dense = Dense(n_in, n_out, C_W=cw, C_b=cb, scale_W=math.sqrt(cw / n_in) if ntk else None,
                      scale_b=math.sqrt(cb) if ntk else None, rate_W=rw, rate_b=rb,
                      lambdas=(spec.lambda_W[l - 1], spec.lambda_b[l - 1]))
        blk: Layer = dense if l == 1 else Serial([act, dense])
        if spec.is_residual_layer(l):
            blk = Residual(blk, *spec.residual)
        out.append(blk)
    return out


@dataclass
class Cache:
    """What :meth:`BatchedMLP.forward` keeps: per block its context; ``z[l-1]`` = z^(l) (l = 1 … L),
    ``sigma[l-1]``, ``dsigma[l-1]`` = σ(z^(l)), σ'(z^(l)) for the hidden layers l = 1 … L-1."""

    ctx: list
    z: list
    sigma: list
    dsigma: list


class BatchedMLP:
    """Forward, manual backward, rates and empirical NTK of M networks of ``spec`` with stacked
    parameters: a list over layers l = 1 … L of {"W": (M, n_l, n_{l-1}), "b": (M, n_l)}, the
    trainable tensors of the spec's parameterisation ('ntk': unit-variance ω, β; 'standard': W, b)."""

    def __init__(self, spec: MLPSpec, device="cpu", dtype=torch.float64):
        if not isinstance(spec, MLPSpec):
            raise ParameterError("spec", type(spec).__name__, "an MLPSpec (see MLPSpec.make)")
        self.spec = spec
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype)
        self.blocks = spec_layers(spec)

    # -- parameters ----------------------------------------------------------------------------
    def init(self, M: int, seed: int = 0, *, rng_block: int | None = None, start: int = 0,
             total: int | None = None) -> list[dict]:
        """Networks start … start+M-1 of an ensemble of ``total`` (default start+M) drawn with the RNG
        layout of :class:`deepeft.ensemble.EnsembleSampler` (method='weights'): the same networks for
        the same (seed, rng_block, dtype, device).  ``start`` must begin an RNG block."""
        M = check_int("M", M, 1)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ParameterError("seed", seed, "an integer >= 0")
        start = check_int("start", start, 0)
        total = start + M if total is None else check_int("total", total, start + M)
        B = default_rng_block(self.device, total) if rng_block is None else check_int("rng_block", rng_block, 1)
        if start % B:
            raise ParameterError("start", start, f"a multiple of rng_block={B} (chunks are whole RNG blocks)")
        rng = BlockRNG(seed, total, B, start, start + M, device=self.device, dtype=self.dtype)
        return [blk.draw(rng.randn)[0] for blk in self.blocks]

    def rates(self) -> list[dict]:
        """Per layer {"W": rate, "b": rate}: Δθ = −η·rate·∂L/∂θ is PDLT's gradient descent with the
        spec's λ_W, λ_b (:meth:`MLPSpec.per_parameter_rates`)."""
        out = []
        for l in range(1, self.spec.depth + 1):
            rw, rb = self.spec.per_parameter_rates(l)
            out.append({"W": rw, "b": rb})
        return out

    def trainable(self, Ws: list[torch.Tensor], bs: list[torch.Tensor]) -> list[dict]:
        """Actual weights and biases → the trainable tensors of the parameterisation (inverse of
        :meth:`weights`; a bias with C_b = 0 in 'ntk' has β = 0)."""
        out = []
        for blk, W, b in zip(self.blocks, Ws, bs):
            d = self._dense(blk)
            if d.scale_W is None:
                out.append({"W": W, "b": b})
            else:
                out.append({"W": W / d.scale_W, "b": b / d.scale_b if d.scale_b > 0 else torch.zeros_like(b)})
        return out

    def weights(self, params: list[dict]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The actual (W, b) of every layer."""
        return [self._dense(blk).weights(p) for blk, p in zip(self.blocks, params)]

    @staticmethod
    def _dense(blk: Layer) -> Dense:
        return blk if isinstance(blk, Dense) else blk.dense

    def dense(self, l: int) -> Dense:
        """The Dense layer of block l (1-based)."""
        return self._dense(self.blocks[l - 1])

    # -- forward / backward --------------------------------------------------------------------
    def _input(self, x) -> torch.Tensor:
        x = torch.as_tensor(x, dtype=self.dtype, device=self.device)
        if x.dim() not in (2, 3) or x.shape[-1] != self.spec.input_dim:
            raise ParameterError("x", f"shape {tuple(x.shape)}",
                                 f"(N, {self.spec.input_dim}) shared or (M, N, {self.spec.input_dim})")
        return x

    def forward(self, params: list[dict], x, keep: bool = False):
        """Outputs z^(L) (M, N, n_L); with ``keep`` also a :class:`Cache` for :meth:`backward` / NTK."""
        h = self._input(x)
        ctxs, zs = [], []
        for blk, p in zip(self.blocks, params):
            h, c = blk.apply([p], h, keep)
            ctxs.append(c)
            zs.append(h)
        if not keep:
            return h
        # block l ≥ 2 is (Residual of) Act ∘ Dense: its Act context is (z^(l-1), σ, σ')
        sig = [c[0][1] for c in ctxs[1:]]
        dsig = [c[0][2] for c in ctxs[1:]]
        return h, Cache(ctxs, zs, sig, dsig)

    def preactivations(self, params: list[dict], x) -> list[torch.Tensor]:
        """[z^(1), …, z^(L)] (differentiable; for one network, params without the M axis, too)."""
        h, zs = x, []
        for blk, p in zip(self.blocks, params):
            h, _ = blk.apply([p], h)
            zs.append(h)
        return zs

    def backward(self, params: list[dict], cache: Cache, dout: torch.Tensor) -> list[dict]:
        """∂L/∂params from dout = ∂L/∂z^(L) (M, N, n_L) by the chain rule (no autograd graph)."""
        delta, grads = dout, []
        for l in range(len(self.blocks) - 1, -1, -1):
            g, delta = self.blocks[l].backward([params[l]], cache.ctx[l], delta, need_input=l > 0)
            grads = g + grads
        return grads

    # -- NTK -----------------------------------------------------------------------------------
    def ntk_layers(self, params: list[dict], x1, x2=None) -> list[torch.Tensor]:
        """Ĥ^(l) (M, N1, N2, n_l, n_l) of every layer by the NTK forward equation (pdlt §5.1),
        weighted by the spec's λ_W, λ_b."""
        _, c1 = self.forward(params, x1, keep=True)
        c2 = None if x2 is None else self.forward(params, x2, keep=True)[1]
        H, out = None, []
        for l, blk in enumerate(self.blocks):
            H = blk.ntk_step([params[l]], c1.ctx[l], H, None if c2 is None else c2.ctx[l])
            out.append(H)
        return out

    def ntk(self, params: list[dict], x1, x2=None) -> torch.Tensor:
        """Empirical NTK Θ̂ of the outputs: (M, N1, N2) for n_L = 1, else (M, N1, N2, n_L, n_L)."""
        H = self.ntk_layers(params, x1, x2)[-1]
        if H.dim() == 4:  # the first layer of a depth-1 network has no network axis
            M = params[0]["W"].shape[0]
            H = H.unsqueeze(0).expand(M, *H.shape)
        return H[..., 0, 0] if self.spec.output_width == 1 else H
