"""Known learning coefficients and exact finite-temperature expectations (``slt.md`` §2–4).

Everything here is exact arithmetic or closed-form linear algebra — the references the samplers
are tested against.
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import Sequence

import numpy as np

from ..core.errors import ParameterError, check_int, check_nonnegative, check_positive


# ----------------------------------------------------------------------------- deep linear nets
def check_dln(widths: Sequence[int], rank: int = 0) -> tuple[list[int], int]:
    """Validated deep-linear-network widths [H_0, …, H_L] (L ≥ 1) and true rank 0 ≤ r ≤ min H_i."""
    try:
        H = [check_int("widths[i]", h, 1) for h in widths]
    except TypeError:
        raise ParameterError("widths", widths, "a sequence of >= 2 positive integers [H_0, ..., H_L]") from None
    if len(H) < 2:
        raise ParameterError("widths", widths, "a sequence of >= 2 positive integers [H_0, ..., H_L]")
    r = check_int("rank", rank, 0)
    if r > min(H):
        raise ParameterError("rank", r, f"0 <= rank <= min(widths) = {min(H)}")
    return H, r


def aoyagi_dln(widths: Sequence[int], rank: int = 0) -> tuple[Fraction, int]:
    """RLCT λ and multiplicity m of a deep linear network (Aoyagi 2024, Neural Networks 172, 106132, Thm 1).

    ``widths`` = [H_0 (input), H_1, …, H_L (output)]; ``rank`` = r, the rank of the true
    end-to-end map (0 ≤ r ≤ min H_i).  With M_i = H_i − r, Σ is the smallest prefix (size ℓ+1 ≥ 2)
    of the indices sorted by M such that max_Σ M < min_{∉Σ} M, Σ_Σ M ≥ ℓ·max_Σ M and
    Σ_Σ M < ℓ·min_{∉Σ} M (the last two vacuous when Σ is everything).  With S = Σ_Σ M,
    c = ⌈S/ℓ⌉, a = S − (c−1)ℓ::

        λ = (−r² + r(H_0 + H_L))/2 + a(ℓ−a)/(4ℓ) − ℓ(ℓ−1)/4·(S/ℓ)² + ½ Σ_{i<j∈Σ} M_i M_j,
        m = a(ℓ−a) + 1.

    Returned as an exact ``Fraction`` and an int.
    """
    H, r = check_dln(widths, rank)
    M = sorted(h - r for h in H)
    for size in range(2, len(M) + 1):
        ell = size - 1
        sig, rest = M[:size], M[size:]
        S = sum(sig)
        if rest and not max(sig) < min(rest):
            continue
        if not S >= ell * max(sig):
            continue
        if rest and not S < ell * min(rest):
            continue
        c = -(-S // ell)  # ceil
        a = S - (c - 1) * ell
        pair = sum(sig[i] * sig[j] for i in range(size) for j in range(i + 1, size))
        lam = (Fraction(-r * r + r * (H[0] + H[-1]), 2) + Fraction(a * (ell - a), 4 * ell)
               - Fraction(ell * (ell - 1), 4) * Fraction(S, ell) ** 2 + Fraction(pair, 2))
        return lam, a * (ell - a) + 1
    raise ParameterError("widths", widths, "widths for which Aoyagi's index set exists (internal consistency failure)")


def rrr_rlct(M: int, H: int, N: int, r: int = 0) -> tuple[Fraction, int]:
    """Reduced-rank regression RLCT (Aoyagi & Watanabe 2005, Neural Networks 18, 924–933, Main Theorem).

    Two-layer linear network with input M, hidden H, output N, true rank r.
    Returns (λ, m).  Cases are as in ``slt.md`` §2.
    """
    M, H, N = (check_int(k, v, 1) for k, v in (("M", M), ("H", H), ("N", N)))
    r = check_int("r", r, 0)
    if r > min(M, H, N):
        raise ParameterError("r", r, f"0 <= r <= min(M, H, N) = {min(M, H, N)}")
    if N + r <= M + H and M + r <= N + H and H + r <= M + N:
        base = Fraction(2 * (H + r) * (M + N) - (M - N) ** 2 - (H + r) ** 2, 8)
        if (M + H + N + r) % 2 == 0:
            return base, 1
        return base + Fraction(1, 8), 2
    if M + H < N + r:
        return Fraction(H * M - H * r + N * r, 2), 1
    if N + H < M + r:
        return Fraction(H * N - H * r + M * r, 2), 1
    # M + N < H + r
    return Fraction(M * N, 2), 1


def dln_num_params(widths: Sequence[int]) -> int:
    return int(sum(a * b for a, b in zip(widths[:-1], widths[1:])))


# ------------------------------------------------------------------------ simple potentials
def normal_crossing_rlct(k: Sequence[int]) -> tuple[Fraction, int]:
    """K = Π_i w_i^{2 k_i} with a flat prior near 0: λ = 1/(2 max k), m = #{i: k_i = max} (Watanabe 2009, ch. 2)."""
    ks = [check_int("k[i]", v, 0) for v in k]
    ks = [v for v in ks if v > 0]
    if not ks:
        raise ParameterError("k", k, "at least one positive exponent")
    kmax = max(ks)
    return Fraction(1, 2 * kmax), sum(1 for v in ks if v == kmax)


def homogeneous_rlct(d: int, degree: int) -> Fraction:
    """K homogeneous of degree D in d variables, positive away from 0: λ = d/D (m = 1)."""
    return Fraction(check_int("d", d, 1), check_int("degree", degree, 1))


def quadratic_llc_expectation(h: Sequence[float], nbeta: float, localization: float = 0.0,
                              lr: float | None = None) -> float:
    """E[λ̂] for L_n(w) − L_n(w*) = ½ Σ h_i u_i² under the localised tempered posterior (``slt.md`` §3).

    Exact sampling: ½ Σ t h_i / a_i with a_i = t h_i + γ, t = nβ.  Full-batch SGLD with step ε at
    stationarity has Var u_i = 1/[a_i (1 − ε a_i/4)] (the AR(1) u ← (1 − ε a/2) u + √ε ξ), hence
    ½ Σ t h_i / [a_i (1 − ε a_i / 4)]; it diverges once ε·a_max ≥ 4 (a ParameterError here).
    """
    t = check_positive("nbeta", nbeta)
    g = check_nonnegative("localization", localization)
    hh = np.asarray(h, dtype=float)
    if hh.ndim != 1 or hh.size == 0 or np.any(hh < 0) or not np.all(np.isfinite(hh)):
        raise ParameterError("h", h, "a non-empty sequence of finite curvatures >= 0")
    a = t * hh + g
    if np.any(a <= 0):
        raise ParameterError("localization", g, "> 0 when some curvature h_i is 0")
    if lr is None:
        return float(0.5 * np.sum(t * hh / a))
    e = check_positive("lr", lr)
    if e * a.max() >= 4:
        raise ParameterError("lr", e, f"< 4/a_max = {4 / a.max():.6g} (SGLD on this quadratic diverges beyond)")
    return float(0.5 * np.sum(t * hh / (a * (1 - e * a / 4))))


# ----------------------------------------------------------------- Bayesian linear regression
def _blr_check(X, y, sigma, prior_std):
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float).reshape(-1)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ParameterError("X", f"array of shape {X.shape}", "a non-empty (n, d) matrix")
    if y.shape[0] != X.shape[0]:
        raise ParameterError("y", f"length {y.shape[0]}", f"length n = {X.shape[0]}")
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(y))):
        raise ParameterError("X, y", "NaN/Inf", "finite values only")
    return X, y, check_positive("sigma", sigma), check_positive("prior_std", prior_std)


def blr_free_energy(X, y, sigma: float, prior_std: float) -> float:
    """Exact F_n = −log ∫ N(w; 0, s²I) Π N(y_i; x_iᵀw, σ²) dw (``slt.md`` §4)::

        F_n = (n/2) log 2π + ½ log det(σ²I + s² X Xᵀ) + ½ yᵀ (σ²I + s² X Xᵀ)⁻¹ y
    """
    X, y, s2n, s = _blr_check(X, y, sigma, prior_std)
    n = X.shape[0]
    Sig = s2n ** 2 * np.eye(n) + s ** 2 * X @ X.T
    sign, logdet = np.linalg.slogdet(Sig)
    return float(0.5 * n * math.log(2 * math.pi) + 0.5 * logdet + 0.5 * y @ np.linalg.solve(Sig, y))


def blr_expected_nll(X, y, sigma: float, prior_std: float, beta: float) -> float:
    """E_β[n L_n] under the tempered posterior (precision A_β = βXᵀX/σ² + I/s², mean A_β⁻¹βXᵀy/σ²)::

        E_β[n L_n] = (n/2) log(2πσ²) + [‖y − X m_β‖² + tr(XᵀX A_β⁻¹)] / (2σ²)
    """
    X, y, sg, s = _blr_check(X, y, sigma, prior_std)
    b = check_nonnegative("beta", beta)
    n, d = X.shape
    A = b * X.T @ X / sg ** 2 + np.eye(d) / s ** 2
    m = np.linalg.solve(A, b * X.T @ y / sg ** 2)
    r = y - X @ m
    return float(0.5 * n * math.log(2 * math.pi * sg ** 2) + (r @ r + np.trace(X.T @ X @ np.linalg.inv(A))) / (2 * sg ** 2))


def blr_wbic(X, y, sigma: float, prior_std: float) -> float:
    """Exact WBIC = E_{β=1/log n}[n L_n] (Watanabe 2013, JMLR 14, eq. 7) for Bayesian linear regression."""
    n = np.asarray(X).shape[0]
    if n < 2:
        raise ParameterError("X", f"{n} rows", ">= 2 rows (β = 1/log n)")
    return blr_expected_nll(X, y, sigma, prior_std, 1.0 / math.log(n))


def blr_heat_capacity(X, y, sigma: float, prior_std: float, beta: float) -> float:
    """Exact Var_β[nβ L_n] for Bayesian linear regression (Gaussian posterior, ``slt.md`` §3).

    With u = w − m_β, n L_n = const + gᵀu + ½ uᵀ(XᵀX/σ²)u where g = −Xᵀ(y − X m_β)/σ²:
    Var = gᵀΣg + ½ tr(QΣQΣ) with Q = XᵀX/σ², Σ = A_β⁻¹; multiplied by β².
    """
    X, y, sg, s = _blr_check(X, y, sigma, prior_std)
    b = check_nonnegative("beta", beta)
    d = X.shape[1]
    Q = X.T @ X / sg ** 2
    A = b * Q + np.eye(d) / s ** 2
    Sig = np.linalg.inv(A)
    m = Sig @ (b * X.T @ y / sg ** 2)
    g = -X.T @ (y - X @ m) / sg ** 2
    QS = Q @ Sig
    return float(b ** 2 * (g @ Sig @ g + 0.5 * np.trace(QS @ QS)))
