"""Gaussian expectations ⟨F⟩_K of products of an activation and its derivatives.

Written once here, reused by every recursion in :mod:`deepeft.theory`.  Methods, by class of σ:

* scale-invariant σ (linear, ReLU, leaky ReLU, abs): closed forms.  One variable: half-line
  moments.  Two variables: the arc-cosine kernel (Cho & Saul 2009) and its covariance derivatives
  via Price's theorem ∂⟨F⟩/∂K_ab = ⟨∂_a∂_b F⟩ (a ≠ b), ∂⟨F⟩/∂K_aa = ½⟨∂_a² F⟩ — which captures the
  delta functions in σ'' exactly.  Four-point products of ≤ 2 variables: exact angular quadrature
  (PDLT reference §2: homogeneous F ⇒ 1-d integral over the angle, split at the kinks).
* erf: arcsine closed forms for ⟨σσ⟩ and ⟨σ'σ'⟩ (Williams 1997).
* smooth σ (tanh, GELU, SiLU, softplus, sigmoid, sin, user callables): Gauss–Hermite quadrature
  in whitened coordinates z = L u (L L^T = K, from an eigendecomposition, so degenerate K is fine),
  with derivatives of σ from autograd.  Accuracy is checked against half the order; a shortfall
  raises an :class:`AccuracyWarning` stating the accuracy reached.
* other non-smooth σ (ELU, user callables declared ``smooth=False``): Gauss–Legendre on the two
  half-lines split at the kink z = 0 (one variable); Gauss–Hermite otherwise (with the warning).

K-derivatives of one-variable expectations use the Hermite weights (PDLT reference §1)::

    d/dK ⟨f⟩ = ⟨f (z² − K)⟩ / (2K²),   d²/dK² ⟨f⟩ = ⟨f (z⁴ − 6Kz² + 3K²)⟩ / (4K⁴)

so σ'' is never needed inside a one-variable integrand.
"""
from __future__ import annotations

import itertools
import math
import warnings
from functools import lru_cache

import numpy as np
import torch

from .activations import Activation
from .errors import AccuracyWarning, ParameterError

# Gauss–Hermite orders (nodes per dimension) by number of distinct variables.
GH_ORDER = {1: 200, 2: 72, 3: 36, 4: 20}
ACCURACY_RTOL = 1e-8


@lru_cache(maxsize=None)
def _gh(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilists' Gauss–Hermite nodes and weights normalised to E over N(0, 1)."""
    x, w = np.polynomial.hermite_e.hermegauss(n)
    return x, w / math.sqrt(2 * math.pi)


@lru_cache(maxsize=None)
def _gh_grid(n: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    x, w = _gh(n)
    grids = np.meshgrid(*([x] * d), indexing="ij")
    wg = np.meshgrid(*([w] * d), indexing="ij")
    U = np.stack([g.ravel() for g in grids], axis=-1)  # (n^d, d)
    W = np.prod(np.stack([g.ravel() for g in wg], axis=-1), axis=-1)
    return U, W


def _sqrt_psd(K: np.ndarray, name: str = "K") -> np.ndarray:
    """L with L L^T = K for a batch (..., d, d) of PSD matrices; clear error if not PSD."""
    K = 0.5 * (K + np.swapaxes(K, -1, -2))
    lam, V = np.linalg.eigh(K)
    scale = np.maximum(np.abs(lam).max(axis=-1, keepdims=True), 1e-300)
    if np.any(lam < -1e-9 * scale):
        raise ParameterError(name, "a matrix with eigenvalue %.3g" % lam.min(), "a positive semi-definite kernel")
    return V * np.sqrt(np.clip(lam, 0, None))[..., None, :]


def _check_K(K, name="K") -> np.ndarray:
    K = np.asarray(K, dtype=np.float64)
    if not np.all(np.isfinite(K)):
        raise ParameterError(name, "non-finite value", "finite kernel entries (the recursion diverged?)")
    if np.any(K < 0):
        raise ParameterError(name, float(np.min(K)), "K >= 0 (a variance)")
    return K


# ----------------------------------------------------------------------------------------------
# One variable
# ----------------------------------------------------------------------------------------------
def _hermite_weight(z: np.ndarray, K: np.ndarray, dK: int) -> np.ndarray:
    if dK == 0:
        return np.ones_like(z)
    if dK == 1:
        return (z**2 - K) / (2 * K**2)
    if dK == 2:
        return (z**4 - 6 * K * z**2 + 3 * K**2) / (4 * K**4)
    raise ValueError("dK must be 0, 1 or 2")


def _abs_moment(p: int) -> float:
    """E|u|^p for u ~ N(0, 1)."""
    return 2 ** (p / 2) * math.gamma((p + 1) / 2) / math.sqrt(math.pi)


def single(act: Activation, K, p: int, q: int = 0, dK: int = 0) -> np.ndarray:
    """d^dK/dK^dK ⟨σ(z)^p σ'(z)^q⟩_K for z ~ N(0, K), elementwise over the array K (dK ≤ 2)."""
    K = _check_K(K)
    if act.slopes is not None:
        ap, am = act.slopes
        c = 0.5 * _abs_moment(p) * (ap ** (p + q) + (-1) ** p * am ** (p + q))
        e = p / 2  # ⟨σ^p σ'^q⟩ = c K^{p/2}
        coef = 1.0
        for k in range(dK):
            coef *= e - k
        with np.errstate(divide="ignore", invalid="ignore"):
            out = c * coef * np.power(K, e - dK) if coef != 0 else np.zeros_like(K)
        return np.where(K > 0, out, c * coef * (e - dK == 0)) if dK else out
    if dK > 0 and np.any(K <= 0):
        raise ParameterError("K", float(np.min(K)), "K > 0 for K-derivatives of Gaussian expectations")
    if act.closed_form == "erf" and dK == 0 and (p, q) in ((2, 0), (0, 2)):
        if (p, q) == (2, 0):  # ⟨erf²⟩ = (2/π) arcsin(2K/(1+2K))
            return (2 / math.pi) * np.arcsin(2 * K / (1 + 2 * K))
        return (4 / math.pi) / np.sqrt(1 + 4 * K)  # ⟨erf'²⟩
    return _single_quad(act, K, p, q, dK)


_GAUSS_BREAKS = np.array([-5.0, -2.5, 2.5, 5.0])  # the Gaussian's own scale, in u


def _panel_rule(K: np.ndarray, nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Composite Gauss–Legendre rule for E over N(0, 1) in u = z/√K, with panel breaks at
    u = 0, ±2/√K, ±8/√K (the activation's own scale) and ±10 (the Gaussian's reach).  Each panel's
    integrand is analytic for smooth σ (and for σ with a kink at 0), so convergence is geometric
    for every K — unlike plain Gauss–Hermite once √K ≫ 1 turns tanh into a step in u."""
    x, w = np.polynomial.legendre.leggauss(nodes)
    c = 10.0
    sk = np.sqrt(np.maximum(K, 1e-300))[:, None]
    br = np.concatenate([np.full_like(sk, -c), np.clip(np.array([-8.0, -2.0, 0.0, 2.0, 8.0])[None, :] / sk, -c, c),
                         np.broadcast_to(_GAUSS_BREAKS, (len(K), len(_GAUSS_BREAKS))), np.full_like(sk, c)], axis=1)
    br = np.sort(br, axis=1)
    lo, hi = br[:, :-1, None], br[:, 1:, None]  # (B, 6, 1)
    u = 0.5 * (hi - lo) * (x[None, None, :] + 1) + lo
    wu = 0.5 * (hi - lo) * w[None, None, :] * np.exp(-0.5 * u**2) / math.sqrt(2 * math.pi)
    return u.reshape(len(K), -1), wu.reshape(len(K), -1)


def _single_quad(act: Activation, K: np.ndarray, p: int, q: int, dK: int, nodes: int = 40,
                 check: bool = True) -> np.ndarray:
    Kf = np.atleast_1d(K).astype(np.float64).ravel()
    u, w = _panel_rule(Kf, nodes)
    z = np.sqrt(Kf)[:, None] * u
    ds = act.derivatives(torch.as_tensor(z), 1 if q else 0)
    f = ds[0].numpy() ** p
    if q:
        f = f * ds[1].numpy() ** q
    val = np.sum(f * _hermite_weight(z, Kf[:, None], dK) * w, axis=1)
    if check:
        coarse = _single_quad(act, Kf, p, q, dK, nodes=nodes - 16, check=False)
        _warn_accuracy(val, coarse, f"⟨σ^{p}σ'^{q}⟩ (dK={dK})", act, rtol=1e-9)
    return val.reshape(np.shape(K))


def single_table(act: Activation, K, requests, check: bool = False) -> dict:
    """Several one-variable moments at once: ``requests`` is an iterable of (p, q, dK); returns
    {(p, q, dK): array}.  σ and σ' are evaluated once on shared nodes (fast path of the recursions)."""
    K = _check_K(K)
    requests = list(requests)
    if act.slopes is not None or act.closed_form is not None:
        return {r: single(act, K, *r) for r in requests}
    if any(r[2] > 0 for r in requests) and np.any(K <= 0):
        raise ParameterError("K", float(np.min(K)), "K > 0 for K-derivatives of Gaussian expectations")
    Kf = np.atleast_1d(K).astype(np.float64).ravel()
    u, w = _panel_rule(Kf, 40)
    z = np.sqrt(Kf)[:, None] * u
    need_q = any(r[1] for r in requests)
    ds = act.derivatives(torch.as_tensor(z), 1 if need_q else 0)
    f0 = ds[0].numpy()
    f1 = ds[1].numpy() if need_q else None
    hw = {d: _hermite_weight(z, Kf[:, None], d) * w for d in {r[2] for r in requests}}
    out = {}
    for (p, q, dK) in requests:
        f = f0**p * (f1**q if q else 1.0)
        out[(p, q, dK)] = np.sum(f * hw[dK], axis=1).reshape(np.shape(K))
    if check:
        for r in requests:
            _warn_accuracy(out[r], _single_quad(act, Kf, *r, nodes=30, check=False).reshape(np.shape(K)),
                           f"⟨σ^{r[0]}σ'^{r[1]}⟩ (dK={r[2]})", act, rtol=1e-9)
    return out


def _warn_accuracy(fine, coarse, what, act, rtol=ACCURACY_RTOL):
    fine, coarse = np.atleast_1d(fine), np.atleast_1d(coarse)
    floor = max(1e-3 * float(np.max(np.abs(fine), initial=0.0)), 1e-10)
    err = np.max(np.abs(fine - coarse) / np.maximum(np.abs(fine), floor))
    if not np.isfinite(err) or err > rtol:
        warnings.warn(f"Gaussian quadrature for {what} of activation {act.name!r} reached relative "
                      f"accuracy ~{err:.1e} only (target {rtol:.0e}); a kink or fast growth of σ slows "
                      f"convergence", AccuracyWarning, stacklevel=3)


# ----------------------------------------------------------------------------------------------
# Two variables: ⟨σ^(i)(z_a) σ^(j)(z_b)⟩
# ----------------------------------------------------------------------------------------------
PAIR_ORDERS = ((0, 0), (1, 1), (2, 0), (0, 2), (2, 2), (3, 1), (1, 3), (4, 0), (0, 4))


def pair(act: Activation, Kaa, Kab, Kbb, i: int, j: int, check: bool = True) -> np.ndarray:
    """⟨σ^(i)(z_a) σ^(j)(z_b)⟩ for (z_a, z_b) ~ N(0, [[Kaa, Kab], [Kab, Kbb]]), elementwise.

    For scale-invariant σ, (i, j) ∈ PAIR_ORDERS (i + j even) are closed forms including the delta
    parts of σ''; they diverge as |ρ| → 1 when both i, j ≥ 2 (genuinely: δ(z_a)δ(z_b))."""
    Kaa, Kab, Kbb = (np.asarray(v, dtype=np.float64) for v in (Kaa, Kab, Kbb))
    Kaa, Kab, Kbb = np.broadcast_arrays(Kaa, Kab, Kbb)
    if act.slopes is not None:
        return _pair_scale_invariant(act.slopes, Kaa, Kab, Kbb, i, j)
    if act.closed_form == "erf" and (i, j) in ((0, 0), (1, 1)):
        A, B = 1 + 2 * Kaa, 1 + 2 * Kbb
        if (i, j) == (0, 0):
            return (2 / math.pi) * np.arcsin(np.clip(2 * Kab / np.sqrt(A * B), -1, 1))
        return (4 / math.pi) / np.sqrt(A * B - 4 * Kab**2)
    return pair_quad(act, Kaa, Kab, Kbb, i, j, check=check)


def _pair_scale_invariant(slopes, Kaa, Kab, Kbb, i, j):
    ap, am = slopes
    d2 = (ap - am) ** 2
    prod = ap * am
    with np.errstate(divide="ignore", invalid="ignore"):
        det = np.clip(Kaa * Kbb - Kab**2, 0, None)
        sdet = np.sqrt(det)
        rho = np.clip(Kab / np.sqrt(Kaa * Kbb), -1, 1)
        psi = np.arccos(rho)
        if (i, j) == (0, 0):  # a₊a₋K_ab + (a₊−a₋)² J_ReLU, J = (√det + (π−ψ)K_ab)/2π
            return prod * Kab + d2 * (sdet + (math.pi - psi) * Kab) / (2 * math.pi)
        if (i, j) == (1, 1):
            return prod + d2 * (math.pi - psi) / (2 * math.pi)
        if (i, j) in ((2, 0), (0, 2)):  # ⟨σ''_a σ_b⟩ = (a₊−a₋)² √det / (2π K_aa)
            Kd = Kaa if i == 2 else Kbb
            return d2 * sdet / (2 * math.pi * Kd)
        if (i, j) == (2, 2):
            return d2 / (2 * math.pi * sdet)
        if (i, j) in ((3, 1), (1, 3)):  # −(a₊−a₋)² K_ab / (2π K_aa √det)
            Kd = Kaa if i == 3 else Kbb
            return -d2 * Kab / (2 * math.pi * Kd * sdet)
        if (i, j) in ((4, 0), (0, 4)):  # (a₊−a₋)² (2K_ab² − K_aa K_bb) / (2π K_aa² √det)
            Kd = Kaa if i == 4 else Kbb
            return d2 * (2 * Kab**2 - Kaa * Kbb) / (2 * math.pi * Kd**2 * sdet)
    raise ParameterError("(i, j)", (i, j), f"one of {PAIR_ORDERS} for a scale-invariant activation")


def _panel_nodes(lo_z, hi_z, centre, scale, nodes):
    """Panel breaks (in u) for z = centre + scale·u: u = ±10 and where z crosses 0, ±2, ±8."""
    x, w = np.polynomial.legendre.leggauss(nodes)
    c = 10.0
    feats = np.array([-8.0, -2.0, 0.0, 2.0, 8.0])
    sc = np.maximum(scale, 1e-300)
    br = np.clip((feats[None, :] - centre[:, None]) / sc[:, None], -c, c)
    br = np.sort(np.concatenate([np.full((len(centre), 1), -c), br, np.broadcast_to(_GAUSS_BREAKS, (len(centre), len(_GAUSS_BREAKS))),
                                 np.full((len(centre), 1), c)], axis=1), axis=1)
    lo, hi = br[:, :-1, None], br[:, 1:, None]
    u = 0.5 * (hi - lo) * (x[None, None, :] + 1) + lo
    wu = 0.5 * (hi - lo) * w[None, None, :] * np.exp(-0.5 * u**2) / math.sqrt(2 * math.pi)
    return u.reshape(len(centre), -1), wu.reshape(len(centre), -1)


def pair_quad(act: Activation, Kaa, Kab, Kbb, i: int, j: int, nodes: int = 16,
              check: bool = True, chunk: int = 64) -> np.ndarray:
    """⟨σ^(i)(z_a) σ^(j)(z_b)⟩ by :func:`gauss2` (any σ; geometric convergence for smooth σ)."""
    mx = max(i, j)
    fa = lambda z: act.derivatives(z, mx)[i]  # noqa: E731
    fb = lambda z: act.derivatives(z, mx)[j]  # noqa: E731
    out = gauss2(fa, fb, Kaa, Kab, Kbb, nodes=nodes, chunk=chunk)
    if check and act.smooth:
        coarse = gauss2(fa, fb, Kaa, Kab, Kbb, nodes=nodes - 4, chunk=chunk)
        _warn_accuracy(out, coarse, f"⟨σ^({i})σ^({j})⟩", act, rtol=1e-8)
    return out


def gauss2(fa, fb, Kaa, Kab, Kbb, nodes: int = 16, chunk: int = 64) -> np.ndarray:
    """E[fa(z_a) fb(z_b)] for (z_a, z_b) ~ N(0, [[Kaa, Kab], [Kab, Kbb]]), elementwise over arrays;
    fa, fb are elementwise torch functions (smooth, or with kinks at 0).

    Nested composite Gauss–Legendre in triangular (Cholesky) coordinates z_a = √K_aa u₁,
    z_b = m(u₁) + s u₂ with m = (K_ab/K_aa) z_a, s² = K_bb − K_ab²/K_aa; each 1-d integral uses
    panels split where activations change character (z = 0, ±2, ±8) and at the Gaussian's scale,
    so saturating functions at large K stay accurate."""
    shape = np.shape(np.broadcast_arrays(np.asarray(Kaa), np.asarray(Kab), np.asarray(Kbb))[0])
    Kaa, Kab, Kbb = (np.ravel(v) for v in np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (Kaa, Kab, Kbb))))
    out = np.empty(Kaa.shape[0])
    for s0 in range(0, Kaa.shape[0], chunk):
        sl = slice(s0, s0 + chunk)
        ka, kab, kb = Kaa[sl], Kab[sl], Kbb[sl]
        sa = np.sqrt(np.maximum(ka, 1e-300))
        u1, w1 = _panel_nodes(None, None, np.zeros_like(ka), sa, nodes)        # (B, P)
        za = sa[:, None] * u1
        m = (kab / np.maximum(ka, 1e-300))[:, None] * za                      # (B, P)
        s = np.sqrt(np.maximum(kb - kab**2 / np.maximum(ka, 1e-300), 0.0))     # (B,)
        B, P = za.shape
        u2, w2 = _panel_nodes(None, None, m.ravel(), np.repeat(s, P), nodes)  # (B*P, Q)
        zb = m.ravel()[:, None] + np.repeat(s, P)[:, None] * u2
        da = fa(torch.as_tensor(za)).numpy()
        db = fb(torch.as_tensor(zb)).numpy()
        inner = np.sum(db * w2, axis=1).reshape(B, P)
        out[sl] = np.sum(da * inner * w1, axis=1)
    return out.reshape(shape)


# ----------------------------------------------------------------------------------------------
# Products over up to four variables: ⟨Π_v σ(z_v)^{p_v}⟩
# ----------------------------------------------------------------------------------------------
def product_moment(act: Activation, Ksub: np.ndarray, powers: tuple[int, ...], order: int | None = None) -> float:
    """⟨Π_v σ(z_v)^{p_v}⟩ for z ~ N(0, Ksub) with d = len(powers) ≤ 4 distinct variables."""
    d = len(powers)
    Ksub = np.asarray(Ksub, dtype=np.float64).reshape(d, d)
    if d == 1:
        return float(single(act, Ksub[0, 0], powers[0]))
    if act.slopes is not None and d == 2:
        return _angular_moment(act, Ksub, powers)
    n = order or GH_ORDER[d]
    if act.slopes is not None:
        n = {3: 48, 4: 26}[d]  # kinked: algebraic convergence, take more nodes (accuracy ~1e-4)
    L = _sqrt_psd(Ksub[None])[0]
    U, W = _gh_grid(n, d)
    Z = U @ L.T
    f = act(Z)
    val = np.prod(f ** np.asarray(powers)[None, :], axis=1)
    return float(val @ W)


def _angular_moment(act: Activation, Ksub: np.ndarray, powers: tuple[int, ...]) -> float:
    """Exact angular quadrature for a homogeneous integrand of degree k = Σp in two variables:
    E[F(z)] = 2^{k/2} Γ(k/2+1)/(2π) ∫₀^{2π} F(L(cos φ, sin φ)) dφ  (PDLT reference §2)."""
    L = _sqrt_psd(Ksub[None])[0]
    k = sum(powers)
    # kinks: angles where a component (L e_φ)_v changes sign
    cuts = [0.0, 2 * math.pi]
    for v in range(2):
        a, b = L[v]
        if abs(a) + abs(b) > 0:
            base = math.atan2(-a, b)  # a cos φ + b sin φ = 0
            for t in (base, base + math.pi, base + 2 * math.pi, base - math.pi):
                if 0 < t < 2 * math.pi:
                    cuts.append(t)
    cuts = np.unique(np.array(cuts))
    x, w = np.polynomial.legendre.leggauss(24)
    total = 0.0
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        if hi - lo < 1e-15:
            continue
        phi = 0.5 * (hi - lo) * (x + 1) + lo
        Z = np.stack([np.cos(phi), np.sin(phi)], -1) @ L.T
        f = act(Z)
        total += 0.5 * (hi - lo) * float(np.prod(f ** np.asarray(powers)[None, :], axis=1) @ w)
    return 2 ** (k / 2) * math.gamma(k / 2 + 1) / (2 * math.pi) * total


def four_point_table(act: Activation, K: np.ndarray) -> np.ndarray:
    """S[a, b, c, d] = ⟨σ_a σ_b σ_c σ_d⟩_K for all index quadruples (N⁴ array, computed once per
    multiset of indices)."""
    N = K.shape[0]
    S = np.empty((N, N, N, N))
    for ms in itertools.combinations_with_replacement(range(N), 4):
        vars_, counts = np.unique(ms, return_counts=True)
        val = product_moment(act, K[np.ix_(vars_, vars_)], tuple(int(c) for c in counts))
        for perm in set(itertools.permutations(ms)):
            S[perm] = val
    return S


def expect(F, K, order: int | None = None) -> float:
    """⟨F(z)⟩_K for z ~ N(0, K), K a d×d PSD matrix (d ≤ 4) or a scalar variance, F a function of an
    array of shape (P, d) returning (P,) values (numpy).  Tensor Gauss–Hermite in whitened
    coordinates with ``order`` nodes per dimension (default by d); accurate for smooth F — for
    products of activations prefer :func:`single`, :func:`pair`, :func:`product_moment`."""
    Km = np.atleast_2d(np.asarray(K, dtype=np.float64))
    d = Km.shape[0]
    if Km.shape != (d, d) or not np.all(np.isfinite(Km)):
        raise ParameterError("K", f"array of shape {Km.shape}", "a finite square (d×d) covariance matrix")
    if d > 4:
        raise ParameterError("K", f"{d}×{d}", "at most 4 variables (use a Monte-Carlo ensemble beyond)")
    if not callable(F):
        raise ParameterError("F", F, "a callable mapping an (P, d) array to P values")
    n = order or GH_ORDER[d]
    L = _sqrt_psd(Km[None])[0]
    U, W = _gh_grid(n, d)
    vals = np.asarray(F(U @ L.T), dtype=np.float64).reshape(-1)
    if vals.shape[0] != W.shape[0]:
        raise ParameterError("F", getattr(F, "__name__", F), "a callable returning one value per row")
    return float(vals @ W)
