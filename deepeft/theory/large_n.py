"""Infinite-width NNGP and NTK kernels for many inputs (N in the thousands), neural-tangents style.

Same recursions as :mod:`deepeft.theory.recursion` (PDLT §2, §5.2), specialised for large N:

* scale-invariant σ (ReLU, leaky ReLU, abs, linear) and erf: closed forms, evaluated in place on
  float64 torch tensors (CPU threads or CUDA) so no N×N temporaries are allocated per operation;
* any other σ: the Mehler (Hermite) expansion of the bivariate Gaussian,
  ⟨f(z_a) g(z_b)⟩ = Σ_k f_k(a) g_k(b) ρ_ab^k with f_k(a) = E[f(√K_aa u) h_k(u)], h_k = He_k/√k!,
  summed by Horner's rule with rank-one updates.  Truncation after M terms is bounded by
  Cauchy–Schwarz: |rest| ≤ ρ_max^{M+1} √(T_a T_b), T_a = ⟨f²⟩ − Σ_{k≤M} f_k(a)² (computed), and M is
  chosen so the bound is below ``rtol``; a shortfall raises an AccuracyWarning with the bound.
  Diagonal entries are one-variable integrals, done exactly by :func:`deepeft.core.gaussian.single`.
"""
from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import numpy as np
import torch

from ..core import gaussian as gi
from ..core.errors import AccuracyWarning, ParameterError
from ..core.spec import MLPSpec, validate_inputs
from ..nets.mlp import spec_layers


class Kernels(NamedTuple):
    nngp: np.ndarray | None
    ntk: np.ndarray | None


_U_NODES: dict = {}


def _u_rule(panels: int = 120, nodes: int = 8, cut: float = 12.0):
    key = (panels, nodes, cut)
    if key not in _U_NODES:
        x, w = np.polynomial.legendre.leggauss(nodes)
        edges = np.linspace(-cut, cut, panels + 1)
        lo, hi = edges[:-1, None], edges[1:, None]
        u = (0.5 * (hi - lo) * (x[None] + 1) + lo).ravel()
        wu = (0.5 * (hi - lo) * w[None]).ravel() * np.exp(-0.5 * u**2) / math.sqrt(2 * math.pi)
        _U_NODES[key] = (u, wu)
    return _U_NODES[key]


def hermite_coefficients(act, K: np.ndarray, M: int, derivative: int = 0) -> np.ndarray:
    """(len(K), M+1) array of f_k = E[σ^(derivative)(√K u) h_k(u)], h_k the normalised Hermite
    polynomials (probabilists'), by a fine composite Gauss–Legendre rule on |u| ≤ 12."""
    u, w = _u_rule()
    H = np.empty((M + 1, u.size))
    H[0] = 1.0
    if M >= 1:
        H[1] = u
    for k in range(1, M):
        H[k + 1] = (u * H[k] - math.sqrt(k) * H[k - 1]) / math.sqrt(k + 1)
    z = np.sqrt(np.asarray(K, dtype=float))[:, None] * u[None, :]
    f = act.derivatives(torch.as_tensor(z), derivative)[derivative].numpy()
    return (f * w[None, :]) @ H.T


def _mehler_order(act, Kd1, Kd2, rmax: float, derivative: int, rtol: float, M_max: int, full):
    """Number of Mehler terms M and the coefficient tables for both input sets (see module doc)."""
    M = 16
    while True:
        c1 = hermite_coefficients(act, Kd1, M, derivative)
        c2 = c1 if Kd2 is None else hermite_coefficients(act, Kd2, M, derivative)
        T1 = np.maximum(full[0] - np.sum(c1**2, 1), 0.0)
        T2 = np.maximum(full[1] - np.sum(c2**2, 1), 0.0)
        scale = math.sqrt(float(np.max(full[0])) * float(np.max(full[1]))) or 1.0
        bound = rmax ** (M + 1) * math.sqrt(float(np.max(T1)) * float(np.max(T2)))
        if bound <= rtol * scale or M >= M_max:
            break
        M = min(M_max, M * 2 if rmax > 0.9 else M + 16)
    if bound > rtol * scale:
        warnings.warn(f"Mehler expansion of {act.name!r} truncated at {M} terms: error bound {bound / scale:.1e} "
                      f"relative (target {rtol:.0e}); inputs with |ρ| = {rmax:.6f} need more terms",
                      AccuracyWarning, stacklevel=4)
    return M, c1, c2


def _tiles(N1: int, N2: int, symmetric: bool, size: int):
    """(row slice, column slice) tiles; the upper triangle only when symmetric."""
    rows = [slice(i, min(i + size, N1)) for i in range(0, N1, size)]
    cols = [slice(j, min(j + size, N2)) for j in range(0, N2, size)]
    for a, r in enumerate(rows):
        for b, c in enumerate(cols):
            if symmetric and b < a:
                continue
            yield r, c


def infinite_kernels(spec: MLPSpec, x1, x2=None, get=("nngp", "ntk"), *, device: str = "cpu",
                     rtol: float = 1e-10, max_terms: int = 600, tile: int = 256) -> Kernels:
    """Last-layer infinite-width NNGP kernel K^(L) and NTK Θ^(L) between x1 (N1, n_0) and x2
    (default x1), float64.  ``get``: 'nngp', 'ntk' or both (neural-tangents' vocabulary).

    Each entry evolves independently given the diagonals, so layers are applied tile by tile
    (``tile``² entries, the upper triangle only when x2 is None) with scratch buffers allocated
    once: every operation works in cache instead of streaming N² numbers through memory."""
    if isinstance(get, str):
        get = (get,)
    for g in get:
        if g not in ("nngp", "ntk"):
            raise ParameterError("get", get, "'nngp', 'ntk' or a tuple of them")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ParameterError("device", device, "'cpu' (CUDA is not available on this machine)")
    if spec.residual is not None:
        raise ParameterError("residual", spec.residual, "None for infinite_kernels (use theory.predict for residual MLPs)")
    if not isinstance(tile, int) or tile < 16:
        raise ParameterError("tile", tile, "an integer >= 16")
    X1 = validate_inputs(x1, spec, "x1")
    X2 = X1 if x2 is None else validate_inputs(x2, spec, "x2")
    sym = x2 is None
    act = spec.activation
    want_ntk = "ntk" in get
    t = lambda a: torch.as_tensor(a, dtype=torch.float64, device=device)  # noqa: E731
    n0 = spec.input_dim
    blocks = spec_layers(spec)
    K, Th = blocks[0].kernel(blocks[0].input_gram(t(X1), t(X2)))  # K^(1), Θ^(1)
    Th = Th if want_ntk else None
    (Kd1, Td1), (Kd2, Td2) = (blocks[0].kernel(np.sum(X * X, 1) / n0) for X in (X1, X2))
    N1, N2 = K.shape
    buf = [torch.empty(tile, tile, dtype=torch.float64, device=device) for _ in range(4)]
    tiles = list(_tiles(N1, N2, sym, tile))
    for l in range(1, spec.depth):
        d = blocks[l].dense  # the in-place tile updates below are Dense.kernel on ⟨σσ⟩, ⟨σ'σ'⟩
        cw, cb, (lw, lb) = d.C_W, d.C_b, d.ntk_lambdas()
        s1, s2 = t(np.sqrt(Kd1)), t(np.sqrt(Kd2))
        inv1 = torch.where(s1 > 0, 1 / s1, torch.zeros_like(s1))
        inv2 = torch.where(s2 > 0, 1 / s2, torch.zeros_like(s2))
        g1, gp1 = gi.single(act, Kd1, 2), gi.single(act, Kd1, 0, 2)
        g2, gp2 = (g1, gp1) if sym else (gi.single(act, Kd2, 2), gi.single(act, Kd2, 0, 2))
        mehler = act.slopes is None and act.closed_form != "erf"
        if mehler:
            rmax = 0.0
            for r, c in tiles:
                rho = buf[0][: r.stop - r.start, : c.stop - c.start]
                torch.mul(K[r, c], inv1[r, None], out=rho).mul_(inv2[None, c]).abs_()
                if sym and r.start == c.start:
                    rho.fill_diagonal_(0.0)
                rmax = max(rmax, float(rho.max()))
            rmax = min(rmax, 1.0)
            M, a1, b1 = _mehler_order(act, Kd1, None if sym else Kd2, rmax, 0, rtol, max_terms, (g1, g2))
            A1, B1 = t(a1), t(b1)
            if want_ntk:
                Mp, a2, b2 = _mehler_order(act, Kd1, None if sym else Kd2, rmax, 1, rtol, max_terms, (gp1, gp2))
                A2, B2 = t(a2), t(b2)
        for r, c in tiles:
            m, n = r.stop - r.start, c.stop - c.start
            rho, G, Gp, tmp = (b[:m, :n] for b in buf)
            k = K[r, c]
            torch.mul(k, inv1[r, None], out=rho).mul_(inv2[None, c]).clamp_(-1.0, 1.0)
            if act.slopes is not None:
                # ψ = arccos ρ;  ⟨σσ⟩ = a₊a₋K + (a₊−a₋)² √(K_aa K_bb)(sin ψ + (π−ψ)ρ)/2π;  ⟨σ'σ'⟩ = a₊a₋ + (a₊−a₋)²(π−ψ)/2π
                ap, am = act.slopes
                d2c = (ap - am) ** 2 / (2 * math.pi)
                torch.arccos(rho, out=Gp).neg_().add_(math.pi)                       # π − ψ
                torch.mul(rho, rho, out=G).neg_().add_(1.0).clamp_(min=0.0).sqrt_()  # sin ψ
                G.addcmul_(Gp, rho).mul_(s1[r, None]).mul_(s2[None, c]).mul_(d2c).add_(k, alpha=ap * am)
                Gp.mul_(d2c).add_(ap * am)
            elif act.closed_form == "erf":
                A1e, A2e = t(1 + 2 * Kd1[r]), t(1 + 2 * Kd2[c])
                torch.outer(A1e, A2e, out=tmp)
                torch.mul(k, 2.0, out=G).div_(tmp.sqrt()).clamp_(-1.0, 1.0).arcsin_().mul_(2 / math.pi)
                torch.mul(k, k, out=Gp).mul_(-4.0).add_(tmp).clamp_(min=1e-300).rsqrt_().mul_(4 / math.pi)
            else:  # Mehler series by Horner's rule
                G.copy_(torch.outer(A1[r, M], B1[c, M]))
                for j in range(M - 1, -1, -1):
                    G.mul_(rho).addr_(A1[r, j], B1[c, j])
                if want_ntk:
                    Gp.copy_(torch.outer(A2[r, Mp], B2[c, Mp]))
                    for j in range(Mp - 1, -1, -1):
                        Gp.mul_(rho).addr_(A2[r, j], B2[c, j])
            if want_ntk:
                Th[r, c].mul_(Gp).mul_(cw).add_(G, alpha=lw).add_(lb)
            k.copy_(G).mul_(cw).add_(cb)
        if sym:  # exact one-variable values on the diagonal
            idx = torch.arange(N1, device=K.device)
            K[idx, idx] = t(cb + cw * g1)
            if want_ntk:
                Th[idx, idx] = t(lb + lw * g1 + cw * gp1 * Td1)
        Td1, Td2 = lb + lw * g1 + cw * gp1 * Td1, lb + lw * g2 + cw * gp2 * Td2
        Kd1, Kd2 = cb + cw * g1, cb + cw * g2
        if not (np.all(np.isfinite(Kd1)) and np.all(np.isfinite(Kd2))):
            raise ParameterError("C_W", spec.C_W, "values for which the kernel stays finite", f"overflow at layer {l + 1}")
    if sym:  # mirror the upper triangle
        for M_ in (K, Th):
            if M_ is not None:
                low = torch.tril_indices(N1, N1, -1, device=M_.device)
                M_[low[0], low[1]] = M_[low[1], low[0]]
    return Kernels(K.cpu().numpy() if "nngp" in get else None, Th.cpu().numpy() if want_ntk else None)
