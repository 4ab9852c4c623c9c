"""Sampling ensembles of networks from an :class:`~deepeft.core.spec.MLPSpec`, vectorised over networks.

Two exact samplers share one RNG layout (conventions: :mod:`deepeft.conventions`):

``'gaussian'`` (fast path, no weights)
    Given layer l's activations σ^(l) of one network (N inputs × n_l neurons), the next
    preactivations z^(l+1)_i = b_i + Σ_j W_ij σ_j are, row by row, i.i.d. Gaussian vectors over the
    inputs with the N×N covariance  Ĝ^(l+1) = C_b + (C_W/n_l) σσᵀ  (pdlt §1: b, W independent of
    everything below).  So z^(l+1) = chol(Ĝ) ε with ε ~ N(0, 1)^{N × n_{l+1}}: O(N² n) work and N·n
    random numbers per layer instead of O(N n²) and n² for explicit weights.  Exact, not an
    approximation.  When the layer below has fewer features than there are inputs (n_l + 1 < N,
    typically the input layer) the rank-(n_l + 1) factor [σ√(C_W/n_l), √C_b] is used instead.  Residual layers (spec: z' = ξ z + γ(b + Wσ(z))) add ξ z to the Gaussian branch.
``'weights'``
    Materialises W^(l) (M × n_l × n_{l-1}) and b^(l) and uses batched matmul.  Needed by the NTK.

Both parameterisations give the same network distribution; the realisation is shared: in 'ntk'
the unit-variance ω is drawn and W = sqrt(C_W/n) ω, in 'standard' W is drawn with the same numbers.

RNG layout.  Networks are grouped in fixed *RNG blocks* of ``rng_block`` consecutive networks; block
b draws from its own generator seeded by ``SeedSequence([seed, b])``, layer after layer.  Chunks are
whole blocks, so how an ensemble is chunked never changes any network: chunked and unchunked runs
give identical numbers (on CPU also bit-for-bit, see :mod:`.estimators`).  The numbers depend on
(seed, rng_block, method, dtype, device), never on the chunk size.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from ..core.device import resolve_device, resolve_dtype  # noqa: F401  (re-exported)
from ..core.errors import DeepEFTError, ParameterError, check_int
from ..core.spec import MLPSpec, validate_inputs
from ..nets.mlp import BatchedMLP
from ..nets.rng import BlockRNG, block_seed, default_rng_block  # noqa: F401  (re-exported)

METHODS = ("gaussian", "weights")
#: the automatic chunk on CPU stays within this many bytes: measured on the README tour's measure()
#: (tanh, depth 8, width 64, 3 inputs, 4096 networks, 2 cores), chunks of 256 / 1024 / 2048 networks
#: took 19.5 / 19.2 / 23.8 s with peaks of 0.72 / 1.64 / 2.98 GB — same numbers (chunking never changes a network)
AUTO_CHUNK_BYTES_CPU = 256 * 2**20


class EnsembleMemoryError(DeepEFTError, MemoryError):
    """A chunk of the ensemble cannot fit in the memory available; the message gives the estimate."""


# ----------------------------------------------------------------------------------------------
# memory helpers
# ----------------------------------------------------------------------------------------------
def available_memory(device: torch.device) -> int:
    """Bytes we allow ourselves: half of MemAvailable on CPU, 80% of free memory on CUDA."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(0.8 * free)
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 // 2
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):
        return 4 * 1024**3


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


# ----------------------------------------------------------------------------------------------
# per-layer state handed to the statistics
# ----------------------------------------------------------------------------------------------
@dataclass
class LayerState:
    """What one layer of a chunk exposes (M_c networks, N inputs).

    l: layer (1-based).  z: (M_c, N, n_l) preactivations.  G: (M_c, N, N) or (N, N) conditional
    covariance of each neuron's preactivation vector given the layer below (None for residual
    layers, whose conditional mean is not zero).  sigma_prev / dsigma_prev: σ and σ' of layer l-1
    ((N, n_0) inputs and None at l = 1).  W (M_c, n_l, n_{l-1}) and b (M_c, n_l) in the 'weights'
    method, else None.  residual: (ξ, γ) if layer l has a skip connection.
    """

    l: int
    z: torch.Tensor
    G: torch.Tensor | None
    sigma_prev: torch.Tensor
    dsigma_prev: torch.Tensor | None
    W: torch.Tensor | None
    b: torch.Tensor | None
    residual: tuple[float, float] | None


def _psd_sqrt_factor(G: torch.Tensor) -> torch.Tensor:
    """A factor F with F Fᵀ = G for a batch of PSD matrices: Cholesky where it succeeds, a
    clamped eigen-decomposition (float64) where G is singular (duplicate inputs, N > n)."""
    Lc, info = torch.linalg.cholesky_ex(G)
    bad = info != 0
    if bool(bad.any()):
        Gb = G[bad].to(torch.float64)
        evals, evecs = torch.linalg.eigh(Gb)
        F = (evecs * evals.clamp_min(0).sqrt().unsqueeze(-2)).to(G.dtype)
        Lc = Lc.clone()
        Lc[bad] = F
    return Lc


# ----------------------------------------------------------------------------------------------
# the sampler
# ----------------------------------------------------------------------------------------------
class EnsembleSampler:
    """Samples M networks of ``spec`` in chunks, yielding every layer of every chunk.

    Use :meth:`plan` to fix the chunk size (checked against memory), then :meth:`chunks` and
    :meth:`layers`.
    """

    def __init__(self, spec: MLPSpec, inputs, ensemble: int, *, seed: int = 0, device="cpu",
                 dtype=torch.float64, method: str = "gaussian", rng_block: int | None = None,
                 ntk: bool = False):
        if not isinstance(spec, MLPSpec):
            raise ParameterError("spec", type(spec).__name__, "an MLPSpec (see MLPSpec.make or deepeft.theory.critical_spec)")
        self.spec = spec
        self.x_np = validate_inputs(inputs, spec)
        self.M = check_int("ensemble", ensemble, 2)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ParameterError("seed", seed, "an integer >= 0")
        self.seed = int(seed)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype)
        if method not in METHODS:
            raise ParameterError("method", method, "'gaussian' (exact, no weights) or 'weights'")
        self.ntk = bool(ntk)
        if self.ntk and method != "weights":
            method = "weights"  # the NTK forward equation needs the weights
        self.method = method
        self.rng_block = check_int("rng_block", rng_block, 1) if rng_block is not None else default_rng_block(self.device, self.M)
        self.net = BatchedMLP(spec, self.device, self.dtype)
        self.x = torch.as_tensor(self.x_np, dtype=self.dtype, device=self.device)
        self.N = self.x.shape[0]
        self.n_blocks = -(-self.M // self.rng_block)

    # -- memory --------------------------------------------------------------------------------
    def bytes_per_network(self, *, full_V: bool = False, extra_per_network: int = 0) -> int:
        """Peak bytes one network needs inside a chunk (estimate, with a 1.5× safety factor)."""
        s = torch.finfo(self.dtype).bits // 8
        N = self.N
        nmax = max(self.spec.all_widths)
        per = s * (6 * N * nmax + 6 * N * N)
        per += 8 * (12 * N * N + 4 * N)  # float64 statistics
        if full_V:
            per += 8 * 4 * N**4 + s * N * N * nmax
        if self.method == "weights":
            per += s * (2 * nmax * nmax + 2 * nmax)
        if self.ntk:
            per += s * (4 * N * N * nmax * nmax + 2 * N * nmax * nmax)
        return int(1.5 * (per + extra_per_network))

    def plan(self, chunk_size: int | None = None, memory_limit: int | None = None, *,
             full_V: bool = False, extra_per_network: int = 0) -> int:
        """Fix and return the chunk size (a multiple of ``rng_block``).  Raises
        :class:`EnsembleMemoryError` with the estimate if the chunk cannot fit."""
        per = self.bytes_per_network(full_V=full_V, extra_per_network=extra_per_network)
        if memory_limit is None:
            budget = available_memory(self.device)
            where = f"available on {self.device} (half of free RAM on CPU, 80% of free GPU memory)"
        else:
            budget = check_int("memory_limit", memory_limit, 1)
            where = "allowed by memory_limit"
        B = self.rng_block
        if chunk_size is None:
            fit = budget // per
            if fit < min(B, self.M):
                raise EnsembleMemoryError(
                    f"one RNG block of {B} networks needs about {fmt_bytes(per * min(B, self.M))} "
                    f"({fmt_bytes(per)} per network) but only {fmt_bytes(budget)} is {where}; "
                    "use a smaller rng_block, fewer inputs, or smaller widths"
                    + ("; the NTK forward equation alone needs N²·n² numbers per network: leave 'Theta' out "
                       "of quantities to measure kernels and vertices without weights" if self.ntk else ""))
            cap = 2048 if self.device.type == "cpu" else 8192
            if self.device.type == "cpu":  # larger chunks buy no speed on CPU, only memory
                fit = min(fit, max(AUTO_CHUNK_BYTES_CPU // per, B))
            chunk = max(B, min(fit, cap) // B * B)
        else:
            # chunks are whole RNG blocks (so chunking never changes a network): round down
            chunk = max(B, check_int("chunk_size", chunk_size, 1) // B * B)
            need = per * min(chunk, -(-self.M // B) * B)
            if need > budget:
                max_fit = budget // per // B * B
                raise EnsembleMemoryError(
                    f"chunk_size={chunk_size} needs about {fmt_bytes(need)} ({fmt_bytes(per)} per network) "
                    f"but only {fmt_bytes(budget)} is {where}; use chunk_size <= {max(max_fit, 0)}"
                    + ("" if max_fit >= B else " (not even one RNG block fits: lower rng_block)"))
        self.chunk_size = min(chunk, self.n_blocks * B)
        self.bytes_per_net = per
        return self.chunk_size

    def chunks(self) -> Iterator[tuple[int, int]]:
        cs = getattr(self, "chunk_size", None) or self.plan()
        for start in range(0, self.M, cs):
            yield start, min(start + cs, self.M)

    # -- sampling ------------------------------------------------------------------------------
    def rng(self, start: int, stop: int) -> BlockRNG:
        """The generators of networks [start, stop) (RNG layout: :mod:`deepeft.nets.rng`)."""
        return BlockRNG(self.seed, self.M, self.rng_block, start, stop, device=self.device, dtype=self.dtype)

    def layers(self, start: int, stop: int, *, need_z_last: bool = True) -> Iterator[LayerState]:
        """Propagate networks [start, stop) layer by layer, yielding a :class:`LayerState` each.

        ``need_z_last=False`` (gaussian method) skips sampling the output layer: its statistics
        need only Ĝ^(L), and no later draw depends on it, so every other number is unchanged
        (``z`` is then None for the last layer)."""
        spec, act = self.spec, self.spec.activation
        rng = self.rng(start, stop)
        L = spec.depth
        x = self.x
        z_prev = eps_buf = None
        sig, dsig = x, None
        weights = self.method == "weights"
        for l in range(1, L + 1):
            n_in, n_out = spec.fan_in(l), spec.width(l)
            cw, cb = spec.C_W[l - 1], spec.C_b[l - 1]
            res = spec.residual if spec.is_residual_layer(l) else None
            W = b = None
            if weights:
                # block l of the batched network (deepeft.nets): draws ω, β, then z^(l) from z^(l-1)
                blk = self.net.blocks[l - 1]
                z, ctx = blk.apply(blk.draw(rng.randn), x if l == 1 else z_prev,
                                   keep=True if (self.ntk or l == 1) else "values")
                if l > 1:
                    (_, sig, dsig), (_, W, b) = ctx
                else:
                    _, W, b = ctx
            elif l > 1:
                sig = act.fn(z_prev)
            # conditional covariance of each neuron's input-vector: Ĝ = C_b + C_W σσᵀ/n_{l-1}
            G = self.net.dense(l).conditional_covariance(sig)
            if weights:
                pass  # z is the network's output above
            elif l == L and not need_z_last and res is None:
                z = None
            else:
                rank = n_in + (1 if cb != 0 else 0)
                if rank < self.N:
                    # Ĝ has rank ≤ n_in + 1 < N: the factor [σ√(C_W/n), √C_b] (N × rank) is cheaper
                    # than an N×N one (this is drawing the weights; typical at l = 1 with few features)
                    F = (sig if l > 1 else x) * math.sqrt(cw / n_in)
                    if cb != 0:
                        F = torch.cat([F, torch.full_like(F[..., :1], math.sqrt(cb))], dim=-1)
                    branch = torch.matmul(F, rng.randn((rank, n_out)))
                else:
                    # ε is used only here, so one buffer serves every layer of the chunk
                    eps = eps_buf = rng.randn((self.N, n_out), out=eps_buf)
                    if l == 1:
                        F = _psd_sqrt_factor(G.unsqueeze(0))[0]
                        branch = torch.matmul(F, eps)
                    else:
                        branch = torch.matmul(_psd_sqrt_factor(G), eps)
                z = branch if res is None else res[0] * z_prev + res[1] * branch  # z' = ξz + γ(b + Wσ)
            # Ĝ_αα = C_b + C_W Σ_i σ_iα²/n sums the square of every activation of the layer below, so
            # checking its diagonal catches inf/NaN anywhere in σ (cheaper than scanning z)
            if not bool(torch.isfinite(torch.diagonal(G, dim1=-2, dim2=-1)).all()):
                from ..core.errors import DivergenceError
                raise DivergenceError(f"activations overflowed to inf/NaN below layer {l} in {self.dtype}; "
                                      "the network is far from criticality (reduce C_W or depth, or use float64)")
            yield LayerState(l, z, None if res is not None else G, sig, dsig, W, b, res)
            z_prev = z


def sample_preactivations(spec: MLPSpec, inputs, ensemble: int, *, seed: int = 0, device="cpu",
                          dtype=torch.float64, method: str = "gaussian", rng_block: int | None = None,
                          layers: tuple[int, ...] | None = None) -> dict[int, torch.Tensor]:
    """All preactivations z^(l) (M, N, n_l) of an ensemble, for small ensembles and tests.

    ``layers``: which layers to keep (default: all).  Memory is M·N·Σn_l; for large M use
    :func:`deepeft.ensemble.measure`, which streams."""
    s = EnsembleSampler(spec, inputs, ensemble, seed=seed, device=device, dtype=dtype, method=method,
                        rng_block=rng_block)
    keep = set(range(1, spec.depth + 1)) if layers is None else set(layers)
    s.plan()
    out: dict[int, list[torch.Tensor]] = {l: [] for l in keep}
    for a, b in s.chunks():
        for st in s.layers(a, b):
            if st.l in keep:
                out[st.l].append(st.z)
    return {l: torch.cat(v, 0) for l, v in out.items()}

