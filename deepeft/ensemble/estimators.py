"""Estimators of PDLT quantities from an ensemble, with jackknife errors over *networks*.

Per network m we form small statistics (N×N matrices, optionally N²×N²), accumulate their sums
per *jackknife batch* (contiguous groups of networks, float64, in network order — so chunking does
not change a single bit on CPU), and turn sums into estimates with one function used for the full
ensemble and for every leave-one-batch-out replica.  Errors are therefore over independent
networks; neurons of one network are never treated as independent samples (pdlt §11).

Estimators (layer l, n ≡ n_l neurons, n_{l-1} the width below; pdlt §4.1):

* kernel  E[z_{i;α}z_{i;β}]: per network k_m = Ĝ_m (the conditional covariance C_b + C_W σσᵀ/n_{l-1},
  a Rao–Blackwellised version of Σ_i z_iz_i/n) for plain layers, Σ_i z_{iα}z_{iβ}/n for residual ones.
* connected four-point, cross-neuron (i ≠ j):  V_{(α1α2)(α3α4)}/n_{l-1} = E[z_{iα1}z_{iα2}z_{jα3}z_{jα4}]
  − E[zz]E[zz].  The first term per network is (S2⊗S2 − S4)/(n(n−1)) with S2 = Σ_i z_iz_iᵀ, S4 = Σ_i
  z_iz_iz_iz_i (i.e. Σ_{i≠j} = (Σ_i)² − Σ_i²), or Ĝ⊗Ĝ for plain layers (its conditional expectation);
  the product of means uses the unbiased two-network U-statistic (Σk⊗Σk − Σk⊗k)/(M(M−1)).
  For plain layers the whole estimate is the unbiased covariance of Ĝ over networks, exact at any
  width: V/n_{l-1} = Cov(Ĝ_{α1α2}, Ĝ_{α3α4}).
* V_norm = V_{(αα)(αα)}/(n_{l-1} k_αα²) and excess kurtosis E[z⁴]/E[z²]² − 3 (= 3 V_norm + O(1/n²)).
* NTK (from per-network Ĥ^(l)_{ij;αβ}): Θ = E[Ĥ_ii], Var(Ĥ_ii), A = n_{l-1}Cov(Ĥ_ii, Ĥ_jj),
  B = n_{l-1}E[Ĥ_ij²] for i ≠ j (pdlt §5.5 "What MC measures"; single-input slots).
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from ..core import quantities as _quantities
from .sampler import LayerState


class BatchAccumulator:
    """Float64 sums of per-network statistics per jackknife batch.

    Networks are summed per RNG block first (fixed-size blocks that every chunking keeps whole, in
    the working dtype: one reduction of the same shape whatever the chunk), then the block sums are
    added in block order to J batches of consecutive blocks in float64.  So the result does not
    depend on the chunk size, bit for bit on CPU."""

    def __init__(self, M: int, n_batches: int = 32, rng_block: int = 1):
        self.M = M
        self.B = int(rng_block)
        self.n_blocks = -(-M // self.B)
        self.J = max(1, min(int(n_batches), self.n_blocks, M // 2))
        self.sums: dict[tuple[str, int], torch.Tensor] = {}
        block_sizes = np.minimum(self.B, M - self.B * np.arange(self.n_blocks))
        self._bid = torch.as_tensor((np.arange(self.n_blocks, dtype=np.int64) * self.J) // self.n_blocks)
        self.counts = torch.zeros(self.J, dtype=torch.float64)
        self.counts.index_add_(0, self._bid, torch.as_tensor(block_sizes, dtype=torch.float64))

    def _block_reduce(self, v: torch.Tensor, fn) -> torch.Tensor:
        Mc = v.shape[0]
        nf = Mc // self.B
        parts = []
        if nf:
            parts.append(fn(v[: nf * self.B].reshape(nf, self.B, *v.shape[1:])))
        if Mc % self.B:
            parts.append(fn(v[nf * self.B:].unsqueeze(0)))
        return parts[0] if len(parts) == 1 else torch.cat(parts, 0)

    def _add_blocks(self, key, start: int, bsums: torch.Tensor) -> None:
        b0 = start // self.B
        idx = self._bid[b0:b0 + bsums.shape[0]].to(bsums.device)
        bs = bsums.to(torch.float64)
        if key not in self.sums:
            self.sums[key] = torch.zeros((self.J, *bs.shape[1:]), dtype=torch.float64, device=bs.device)
        self.sums[key].index_add_(0, idx, bs)

    def add(self, name: str, layer: int, start: int, values: torch.Tensor) -> None:
        """Σ over networks of ``values`` (M_c, ...); ``start`` is a multiple of the RNG block."""
        self._add_blocks((name, layer), start, self._block_reduce(values.detach(), lambda t: t.sum(1)))

    def add_outer(self, name: str, layer: int, start: int, vecs: torch.Tensor) -> None:
        """Σ over networks of vᵀ⊗v for vecs (M_c, K) without forming per-network K×K products."""
        self._add_blocks((name, layer), start,
                         self._block_reduce(vecs.detach(), lambda t: torch.matmul(t.transpose(1, 2), t)))

    def has(self, name: str, layer: int) -> bool:
        return (name, layer) in self.sums

    def batch_sums(self, names: list[str], layer: int) -> dict[str, np.ndarray]:
        return {n: self.sums[(n, layer)].cpu().numpy() for n in names if (n, layer) in self.sums}


def jackknife(fn: Callable[[dict[str, np.ndarray], np.ndarray], dict[str, np.ndarray]],
              batch_sums: dict[str, np.ndarray], counts: np.ndarray) -> tuple[dict, dict]:
    """Apply ``fn(sums, counts)`` to the totals and to every leave-one-batch-out replica in one
    vectorised call: ``sums`` arrive with a leading replica axis (index 0 = all batches) and
    ``counts`` is the matching 1-d array of network counts.  Returns (estimates, standard errors);
    SE = sqrt((J-1)/J Σ_j (θ_j − θ̄)²)."""
    counts = np.asarray(counts, dtype=float)
    J = len(counts)
    tot = {k: v.sum(0) for k, v in batch_sums.items()}
    if J < 2:
        out = fn({k: v[None] for k, v in tot.items()}, np.array([counts.sum()]))
        return ({k: v[0] for k, v in out.items()},
                {k: np.full_like(np.asarray(v[0], dtype=float), np.nan) for k, v in out.items()})
    reps = {k: np.concatenate([tot[k][None], tot[k][None] - v]) for k, v in batch_sums.items()}
    out = fn(reps, np.concatenate([[counts.sum()], counts.sum() - counts]))
    est, se = {}, {}
    for k, v in out.items():
        v = np.asarray(v, dtype=float)
        est[k] = v[0]
        r = v[1:]
        with np.errstate(invalid="ignore"):
            se[k] = np.sqrt((J - 1) / J * ((r - r.mean(0)) ** 2).sum(0))
    return est, se


# ----------------------------------------------------------------------------------------------
# per-network statistics of one layer
# ----------------------------------------------------------------------------------------------
def _outer(a: torch.Tensor) -> torch.Tensor:
    return a.unsqueeze(-1) * a.unsqueeze(-2)


def kernel_statistics(st: LayerState, Mc: int, full_V: bool) -> dict[str, torch.Tensor]:
    """Per-network k, kkd (=d dᵀ), Td (pair 4-pt), m4 (E[z⁴]), and if full_V kk, T (N²×N²)."""
    z = st.z
    N = st.sigma_prev.shape[-2]
    out: dict[str, torch.Tensor] = {}
    if st.G is not None:  # plain layer: conditional (Rao–Blackwellised) statistics
        G = st.G
        k = G.expand(Mc, N, N) if G.dim() == 2 else G
        d = torch.diagonal(k, dim1=-2, dim2=-1)
        # for plain layers the cross-neuron pair term equals k⊗k (Td ≡ kkd, T ≡ kk) and
        # E[z⁴ | Ĝ] = 3 Ĝ_αα² (m4 ≡ 3 diag kkd): only k, kkd (and kk) are accumulated.
        # Names ending in "@outer" are vectors whose outer products are summed (add_outer).
        out["k"] = k
        out["kkd@outer"] = d
        if full_V:
            out["kk@outer"] = k.reshape(Mc, N * N)
        return out
    # residual layer: direct cross-neuron statistics of the sampled z
    n = z.shape[-1]
    zz = z.to(torch.float64)  # residual layers: direct estimator in float64 (sums of n products)
    S2 = zz @ zz.transpose(-1, -2)
    d = torch.diagonal(S2, dim1=-2, dim2=-1)
    z2 = zz * zz
    out["k"] = S2 / n
    out["kkd"] = _outer(d / n)
    out["m4"] = (z2 * z2).sum(-1) / n
    if n >= 2:
        out["Td"] = (_outer(d) - z2 @ z2.transpose(-1, -2)) / (n * (n - 1))
        if full_V:
            Y = (zz.unsqueeze(-2) * zz.unsqueeze(-3)).reshape(Mc, N * N, n)
            S4 = Y @ Y.transpose(-1, -2)
            S2f = S2.reshape(Mc, N * N)
            out["T"] = (_outer(S2f) - S4) / (n * (n - 1))
            out["kk"] = _outer(S2f / n)
    return out


def ntk_statistics(H: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-network NTK statistics from H (M_c, N, N, n, n) = Ĥ_{ij;αβ}."""
    H = H.to(torch.float64)
    n = H.shape[-1]
    dg = torch.diagonal(H, dim1=-2, dim2=-1)  # (Mc, N, N, n)
    h = dg.mean(-1)
    out = {"h": h, "hh": h * h, "hsq": (dg * dg).mean(-1)}
    if n >= 2:
        sq_diag = (dg * dg).sum(-1)
        out["hx"] = (dg.sum(-1) ** 2 - sq_diag) / (n * (n - 1))
        out["hoff"] = ((H * H).sum((-1, -2)) - sq_diag) / (n * (n - 1))
    return out


# ----------------------------------------------------------------------------------------------
# sums → estimates (one function for the full ensemble and for jackknife replicas)
# ----------------------------------------------------------------------------------------------
def _per(M: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Replica counts M (R,) shaped to broadcast against x (R, ...)."""
    return M.reshape(-1, *([1] * (np.ndim(x) - 1)))


def _bouter(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Batched outer product over the last axis: (R, K), (R, K) → (R, K, K)."""
    return a[..., :, None] * b[..., None, :]


def _diag(x: np.ndarray) -> np.ndarray:
    return np.diagonal(x, axis1=-2, axis2=-1)


def _kernel_group() -> frozenset[str]:
    """The registered quantities this module's kernel statistics estimate (estimator 'kernel')."""
    return frozenset(n for n in _quantities.names(measured=True) if _quantities.get(n).estimator == "kernel")


def kernel_estimates(S: dict[str, np.ndarray], M: np.ndarray, n_prev: int, full_V: bool,
                     want: frozenset[str] | None = None) -> dict[str, np.ndarray]:
    """Kernel and vertex estimates from batched sums S[name] (R, ...) of R replicas with network
    counts M (R,) (see :func:`jackknife`); ``want`` limits which are computed (default: all of the
    registry's 'kernel' group)."""
    if not (_kernel_group() if want is None else want) - {"kernel"}:
        return {"kernel": S["k"] / _per(M, S["k"])}
    if "m4" not in S:  # plain layer (conditional statistics): see kernel_statistics
        S = dict(S, Td=S["kkd"], m4=3.0 * _diag(S["kkd"]))
        if "kk" in S:
            S["T"] = S["kk"]
    R, N = S["k"].shape[:2]
    k = S["k"] / _per(M, S["k"])
    dsum = _diag(S["k"])
    est = {"kernel": k}
    kd = _diag(k)
    M2 = _per(M, S["kkd"])
    if "Td" in S:
        conn_pairs = S["Td"] / M2 - (_bouter(dsum, dsum) - S["kkd"]) / (M2 * (M2 - 1))
        est["V_pairs"] = n_prev * conn_pairs
        with np.errstate(divide="ignore", invalid="ignore"):
            est["V_norm"] = _diag(conn_pairs) / kd**2
    else:
        est["V_pairs"] = np.full((R, N, N), np.nan)
        est["V_norm"] = np.full((R, N), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        est["kurtosis"] = (S["m4"] / _per(M, S["m4"])) / kd**2 - 3.0
    if full_V:
        if "T" in S:
            kf = S["k"].reshape(R, N * N)
            M4 = _per(M, S["T"])
            # unbiased E[k]⊗E[k] from pairs of distinct networks
            conn = S["T"] / M4 - (_bouter(kf, kf) - S["kk"]) / (M4 * (M4 - 1))
            est["V"] = n_prev * conn.reshape(R, N, N, N, N)
        else:
            est["V"] = np.full((R, N, N, N, N), np.nan)
    return est


def ntk_estimates(S: dict[str, np.ndarray], M: np.ndarray, n_prev: int) -> dict[str, np.ndarray]:
    """NTK mean, variance and A/B estimates from batched sums (as :func:`kernel_estimates`)."""
    Mh = _per(M, S["h"])
    theta = S["h"] / Mh
    mean_sq = (S["h"] ** 2 - S["hh"]) / (Mh * (Mh - 1))  # unbiased E[Ĥ_ii]² (elementwise)
    est = {"Theta": theta, "Theta_var": S["hsq"] / Mh - mean_sq}
    if "hx" in S:
        est["NTK_A"] = n_prev * (S["hx"] / Mh - mean_sq)
        est["NTK_B"] = n_prev * S["hoff"] / Mh
    else:
        est["NTK_A"] = np.full_like(theta, np.nan)
        est["NTK_B"] = np.full_like(theta, np.nan)
    return est


def histogram(samples: np.ndarray, bins: int = 60, scale: float | None = None) -> dict:
    """Histogram (density) of output samples on ±5 standard deviations."""
    samples = np.asarray(samples, dtype=np.float64).ravel()
    s = float(np.sqrt(np.mean(samples**2))) if scale is None else float(scale)
    s = s if s > 0 and math.isfinite(s) else 1.0
    edges = np.linspace(-5 * s, 5 * s, bins + 1)
    counts, _ = np.histogram(samples, bins=edges)
    width = edges[1] - edges[0]
    density = counts / max(len(samples), 1) / width
    return {"edges": edges, "counts": counts, "density": density, "n_samples": int(len(samples)),
            "outside": int(len(samples) - counts.sum())}
