"""Chain diagnostics: split-R̂, effective sample size, standard errors, trace flatness.

* Rank-normalised split-R̂ and bulk ESS follow Vehtari, Gelman, Simpson, Carpenter, Bürkner
  (2021), "Rank-normalization, folding, and localization: an improved R̂", Bayesian Analysis 16:
  R̂ = sqrt(((N−1)/N·W + B/N)/W) on split chains (their eq. 3–4), computed on rank-normalised draws
  (their eq. 14); the reported value is max(bulk, folded).
* ESS uses Geyer's initial monotone sequence estimator on the multi-chain autocorrelation
  ρ_t = 1 − (W − mean_c acov_c(t))/var⁺ (Stan reference manual, "Effective sample size";
  Geyer 1992).
"""
from __future__ import annotations

import math

import numpy as np

from ..core.errors import ParameterError


def _as_chains(name: str, x, min_chains: int = 1, min_draws: int = 2) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2:
        raise ParameterError(name, f"array of shape {a.shape}", "a (chains, draws) array")
    if a.shape[0] < min_chains:
        raise ParameterError("num_chains", a.shape[0], f">= {min_chains} (needed for {name})")
    if a.shape[1] < min_draws:
        raise ParameterError("num_draws", a.shape[1], f">= {min_draws} (needed for {name})")
    if not np.all(np.isfinite(a)):
        raise ParameterError(name, "array with NaN/Inf (diverged chain?)", "finite values only: drop diverged chains first")
    return a


def _autocov(x: np.ndarray) -> np.ndarray:
    """Autocovariance of each row (biased, FFT), shape (chains, draws)."""
    m, n = x.shape
    xc = x - x.mean(axis=1, keepdims=True)
    nfft = 1 << (2 * n - 1).bit_length()
    f = np.fft.rfft(xc, n=nfft, axis=1)
    ac = np.fft.irfft(f * np.conj(f), n=nfft, axis=1)[:, :n]
    return ac / n


def ess(x) -> float:
    """Effective sample size of a (chains, draws) array (Geyer initial monotone sequence)."""
    a = _as_chains("ess", x, 1, 4)
    m, n = a.shape
    acov = _autocov(a)
    chain_mean = a.mean(axis=1)
    chain_var = acov[:, 0] * n / (n - 1.0)
    W = chain_var.mean()
    var_plus = W * (n - 1.0) / n
    if m > 1:
        var_plus += chain_mean.var(ddof=1)
    if not var_plus > 0:
        return float(m * n)
    rho = 1.0 - (W - acov.mean(axis=0)) / var_plus
    rho[0] = 1.0
    # Geyer: sum pairs Γ_k = ρ_{2k} + ρ_{2k+1} while positive, made monotone
    P = []
    t = 0
    while t + 1 < n:
        s = rho[t] + rho[t + 1]
        if s <= 0:
            break
        P.append(s)
        t += 2
    if not P:
        return float(m * n)
    P = np.minimum.accumulate(np.asarray(P))
    tau = -1.0 + 2.0 * P.sum()
    tau = max(tau, 1.0 / math.log10(max(m * n, 10)))
    return float(m * n / tau)


def _split(a: np.ndarray) -> np.ndarray:
    n = a.shape[1] // 2
    return np.concatenate([a[:, :n], a[:, a.shape[1] - n:]], axis=0)


def _rhat_basic(a: np.ndarray) -> float:
    m, n = a.shape
    W = a.var(axis=1, ddof=1).mean()
    B = n * a.mean(axis=1).var(ddof=1)
    if W <= 0:
        return 1.0 if B <= 0 else float("inf")
    var_plus = (n - 1.0) / n * W + B / n
    return float(math.sqrt(var_plus / W))


def _rankdata_average(a: np.ndarray) -> np.ndarray:
    """Ranks 1..N of the flattened ``a`` with ties given their average rank (scipy.stats.rankdata 'average')."""
    flat = np.asarray(a).ravel()
    sorter = np.argsort(flat, kind="mergesort")
    inv = np.empty(sorter.size, dtype=np.intp)
    inv[sorter] = np.arange(sorter.size, dtype=np.intp)
    arr = flat[sorter]
    obs = np.r_[True, arr[1:] != arr[:-1]]
    dense = obs.cumsum()[inv]
    count = np.r_[np.nonzero(obs)[0], len(obs)]
    return 0.5 * (count[dense] + count[dense - 1] + 1)


def _rank_normalise(a: np.ndarray) -> np.ndarray:
    # numpy ranks + torch's ndtri (the normal quantile) instead of scipy.stats, whose import alone
    # costs ~0.5 s of every estimate call
    import torch

    r = _rankdata_average(a).reshape(a.shape)
    s = a.size
    return torch.special.ndtri(torch.from_numpy((r - 3.0 / 8.0) / (s + 1.0 / 4.0))).numpy()


def rhat(x) -> float:
    """Rank-normalised split-R̂ (max of bulk and folded); needs >= 2 chains and >= 4 draws."""
    a = _as_chains("rhat", x, 2, 4)
    sp = _split(a)
    bulk = _rhat_basic(_rank_normalise(sp))
    fold = _rhat_basic(_rank_normalise(np.abs(sp - np.median(sp))))
    return max(bulk, fold)


def mcse_mean(x) -> float:
    """Monte-Carlo standard error of the pooled mean: sd / sqrt(ESS)."""
    a = _as_chains("mcse_mean", x, 1, 4)
    return float(a.std(ddof=1) / math.sqrt(ess(a)))


def trace_drift(x, frac: float = 0.5) -> float:
    """Flatness statistic: (mean of last half − mean of first half) / its standard error (pooled over chains).

    |z| ≲ 3 means the trace is flat (stationary) within its noise; a large positive z means
    the chains are still climbing (not burned in, or localisation too weak), negative z that
    they are relaxing from an over-dispersed start.
    """
    a = _as_chains("trace_drift", x, 1, 8)
    n = a.shape[1]
    h = int(n * frac)
    first, last = a[:, :h], a[:, h:]
    se = math.sqrt(mcse_mean(first) ** 2 + mcse_mean(last) ** 2)
    d = last.mean() - first.mean()
    if se == 0:
        return 0.0 if d == 0 else math.copysign(float("inf"), d)
    return float(d / se)


def summarize_trace(x) -> dict:
    """R̂, ESS, MCSE and drift of a (chains, draws) trace; NaN where not computable (reason given)."""
    a = np.asarray(x, dtype=float)
    out: dict = {}
    try:
        out["ess"] = ess(a)
        out["mcse"] = mcse_mean(a)
    except ParameterError as exc:
        out["ess"], out["mcse"], out["ess_note"] = float("nan"), float("nan"), str(exc)
    try:
        out["rhat"] = rhat(a)
    except ParameterError as exc:
        out["rhat"], out["rhat_note"] = float("nan"), str(exc)
    try:
        out["drift_z"] = trace_drift(a)
    except ParameterError as exc:
        out["drift_z"], out["drift_note"] = float("nan"), str(exc)
    return out
