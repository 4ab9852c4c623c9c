"""Residual MLPs at O(1/n), one input at a time: the linear-response ("bath") form of the theory.

In a residual MLP z^(m+1) = s z^(m) + g (b + W σ(z^(m))) (s = ξ, g = γ on residual layers;
s = 0, g = 1 on plain ones) a neuron *remembers* its own past through the skip path.  The plain-MLP
recursion V' = … + χ_∥² V assumes that a neuron depends on the layer below only through the shared
conditional variance Ĝ, which is no longer true: the neuron's later preactivations are correlated
with its own contribution σ(z^(p))²/n to Ĝ^(p).  The closed single-input residual formula
V' = ξ⁴C_W²Var(σ²) + 4ξ²γ²C_W K² d⟨σ²⟩/dK + χ_∥²V (and the ν(γ) that follows from it) misses these
terms: Monte-Carlo ensembles of residual ReLU networks at ξ = 0.8 give V/(nK²) up to ~2× larger.

Derivation (ours; checked against Monte-Carlo in tests/theory/test_residual.py).  Write
Ĝ_r = C_b + (C_W/n) Σ_j σ(z_j^(r))² for the variance of the branch added to layer r+1 and
u_j^r = σ(z_j^(r))² − ⟨σ²⟩.  At leading order a neuron's trajectory (z^(1), …, z^(L)) is Gaussian
with Cov(z^(p), z^(m)) = K_p Π_{j=p+1}^{m} s_j, and ∂K_m/∂G_r = a_{mr} = g_{r+1}² Π_{j=r+2}^{m} s_j².
Linearising every neuron's u in δĜ and averaging over the n neurons (the "bath") gives
δĜ = R ū⁰ with R = (I − M)⁻¹, M_{rr'} = C_W h_r a_{rr'}, h = d⟨σ²⟩/dK, and ū⁰ the mean of i.i.d.
per-neuron terms C_W u⁰.  With b_m = a_m R (row over layers) and S_{rt} = C_W² Cov₀(σ_r², σ_t²):

    V_m  = n Cov(z_i^(m)², z_k^(m)²) = b_m S b_mᵀ + 2 Σ_r b_{mr} C_W Cov₀(σ_r², z_m²)
    K1_m = Σ_{p<m} a_{mp} C_W n c_p,
    n c_p = h_p K1_p + ½ d²⟨σ²⟩/dK² (b_p S b_pᵀ) + ½ Σ_r b_{pr} C_W Cov₀(σ_r², (σ²)''_p),

with Cov₀ under the Gaussian trajectory.  For s ≡ 0 (plain MLP) R is the product of χ_∥'s and
every formula reduces to PDLT's single-input recursions (tested to machine precision).
Cost O(L³) plus O(L²) two-variable Gaussian integrals per input.
"""
from __future__ import annotations

import numpy as np
import torch

from ..core import gaussian as gi
from ..core.spec import MLPSpec
from ..nets.layers import Residual
from ..nets.mlp import spec_layers


def residual_single_input(spec: MLPSpec, k1: float, K: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-layer K, V (vertex), K1 for one input with K^(1) = k1 (arrays of length L).  ``K``: the
    leading-order kernels K^(1) … K^(L) of that input when the caller has them (the depth loop of
    :func:`deepeft.theory.recursion.propagate`); otherwise they are propagated here."""
    act = spec.activation
    L = spec.depth
    blocks = spec_layers(spec)
    s = np.zeros(L + 1)
    g = np.ones(L + 1)
    cw = np.zeros(L + 1)   # cw[p] multiplies σ(z^(p)) into layer p+1
    for j in range(2, L + 1):
        blk = blocks[j - 1]
        if isinstance(blk, Residual):
            s[j], g[j] = blk.xi, blk.gamma
        cw[j - 1] = blk.dense.C_W
    if K is None:  # leading-order kernels along the depth (single-input tables, one block at a time)
        K = [k1]
        for blk in blocks[1:]:
            K.append(float(blk.kernel(np.array([[K[-1]]]))[0][0, 0]))
    K = np.concatenate([[0.0], np.asarray(K, dtype=float)])
    idx = np.arange(1, L + 1)
    gq = {k: gi.single(act, K[1:], *k) for k in ((2, 0, 0), (2, 0, 1), (2, 0, 2))}
    mean_s2 = np.concatenate([[0.0], gq[(2, 0, 0)]])
    h = np.concatenate([[0.0], gq[(2, 0, 1)]])       # ½⟨(σ²)''⟩ = d⟨σ²⟩/dK
    h2 = np.concatenate([[0.0], gq[(2, 0, 2)]])
    # trajectory covariance T[p, m] (p ≤ m) and response coefficients a[m, p]
    T = np.zeros((L + 1, L + 1))
    a = np.zeros((L + 1, L + 1))
    for p in range(1, L + 1):
        prod = 1.0
        for m in range(p, L + 1):
            if m > p:
                prod *= s[m]
            T[p, m] = T[m, p] = K[p] * prod
        for m in range(p + 1, L + 1):
            a[m, p] = g[p + 1] ** 2 * np.prod(s[p + 2:m + 1] ** 2)
    # two-variable Gaussian integrals along the trajectory
    P, Q = np.meshgrid(idx, idx, indexing="ij")
    Kp, Kq, Tpq = K[P], K[Q], T[P, Q]
    sq = lambda z: act.fn(z) ** 2  # noqa: E731

    def d2sq(z):  # (σ²)'' by autograd (kinks: the a.e. derivative; σσ'' = 0 for scale-invariant σ)
        d = act.derivatives(z, 2)
        return 2 * (d[1] ** 2 + d[0] * d[2])

    C0 = gi.gauss2(sq, sq, Kp, Tpq, Kq, nodes=12) - mean_s2[P] * mean_s2[Q]
    Bz = gi.gauss2(sq, lambda z: z**2, Kp, Tpq, Kq, nodes=12) - mean_s2[P] * K[Q]
    mean_d2 = gi.gauss2(torch.ones_like, d2sq, Kp, Tpq, Kq, nodes=12)
    Cd2 = gi.gauss2(sq, d2sq, Kp, Tpq, Kq, nodes=12) - mean_s2[P] * mean_d2
    pad = lambda M: np.pad(M, ((1, 0), (1, 0)))  # noqa: E731  (1-based layer indices)
    C0, Bz, Cd2 = pad(C0), pad(Bz), pad(Cd2)
    # bath linear response R = (I − M)^-1 over the variance index r = 1 … L-1
    M = np.zeros((L + 1, L + 1))
    for r in range(2, L):
        M[r, 1:r] = cw[r] * h[r] * a[r, 1:r]
    R = np.linalg.inv(np.eye(L + 1) - M)
    S = cw[:, None] * cw[None, :] * C0
    V = np.zeros(L + 1)
    Vsh = np.zeros(L + 1)
    K1 = np.zeros(L + 1)
    nc = np.zeros(L + 1)
    for m in range(2, L + 1):
        b = np.zeros(L + 1)
        b[1:m] = a[m, 1:m] @ R[1:m, 1:m]
        Vsh[m] = b @ S @ b
        V[m] = Vsh[m] + 2 * np.sum(b[1:m] * cw[1:m] * Bz[1:m, m])
        K1[m] = np.sum(a[m, 1:m] * cw[1:m] * nc[1:m])
        if m < L:
            nc[m] = h[m] * K1[m] + 0.5 * h2[m] * Vsh[m] + 0.5 * np.sum(b[1:m] * cw[1:m] * Cd2[1:m, m])
    return {"K": K[1:], "V": V[1:], "K1": K1[1:]}
