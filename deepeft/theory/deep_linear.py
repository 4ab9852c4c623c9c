"""Deep linear networks: exact finite-width moments (any width, not only O(1/n)).

PDLT ch. 3; Zavatone-Veth & Pehlevan 2021 (the output is a Gaussian scale mixture).  With σ(z) = z,
conditionally on layer l the next preactivations are Gaussian with covariance
Ĝ^(l+1) = C_b + C_W S,  S_ab = (1/n_l) Σ_j z_{j;a} z_{j;b}.  Since neurons are conditionally
independent, E[S_ab S_cd] = E[Ĝ_ab Ĝ_cd] + (1/n_l)(E[Ĝ_ac Ĝ_bd] + E[Ĝ_ad Ĝ_bc]), which closes the
recursion for U_abcd = E[Ĝ_ab Ĝ_cd] exactly (PDLT reference §9, extended here to biases).
"""
from __future__ import annotations

import math

import numpy as np

from ..core.errors import ParameterError, check_int
from ..core.spec import MLPSpec, validate_inputs
from .recursion import first_layer_kernel


def _require_linear(spec: MLPSpec):
    if spec.activation.slopes != (1.0, 1.0):
        raise ParameterError("activation", spec.activation.name, "'linear' for exact deep-linear results")
    if spec.residual is not None:
        raise ParameterError("residual", spec.residual, "None for exact deep-linear results")


def exact_four_point(spec: MLPSpec, inputs) -> dict[str, np.ndarray]:
    """Exact per-layer kernel and four-point functions of a deep linear network at finite width.

    Returns arrays over layers l = 1 … L (index 0 ↔ l = 1):
      ``kernel`` (L,N,N): E[z_a z_b] (exact; equals the infinite-width K: no 1/n correction);
      ``U`` (L,N,N,N,N): E[Ĝ_ab Ĝ_cd] = E[z_{i;a} z_{i;b} z_{j;c} z_{j;d}] for i ≠ j;
      ``V`` (L,N,N,N,N): n_{l-1}·(U − K⊗K), the exact cross-neuron connected 4-pt function times
      n_{l-1} — the quantity whose O(1) limit is the vertex V^(l);
      ``V_norm`` (L,N): V_{(aa)(aa)}/(n_{l-1}K_aa²) = Π_{l'<l}(1 + 2/n_{l'}) − 1 when C_b = 0.
    """
    _require_linear(spec)
    x = validate_inputs(inputs, spec)
    G = first_layer_kernel(spec, x)[0]
    K = G.copy()
    U = np.einsum("ab,cd->abcd", G, G)
    Ks, Us = [K], [U]
    for l in range(1, spec.depth):
        n = spec.width(l)
        cb, cw = spec.C_b[l], spec.C_W[l]
        ES = K
        ESS = U + (np.einsum("acbd->abcd", U) + np.einsum("adbc->abcd", U)) / n
        U = cb**2 + cb * cw * (ES[:, :, None, None] + ES[None, None, :, :]) + cw**2 * ESS
        K = cb + cw * K
        Ks.append(K)
        Us.append(U)
    Ks, Us = np.array(Ks), np.array(Us)
    fan = np.array([spec.fan_in(l) for l in range(1, spec.depth + 1)], dtype=float)
    V = fan[:, None, None, None, None] * (Us - np.einsum("lab,lcd->labcd", Ks, Ks))
    idx = np.arange(x.shape[0])
    Vd = V[:, idx, idx, idx, idx]
    Kd = Ks[:, idx, idx]
    return {"kernel": Ks, "U": Us, "V": V, "V_norm": Vd / (fan[:, None] * Kd**2)}


def exact_moment(spec: MLPSpec, inputs, m: int) -> np.ndarray:
    """E[(z^(l))^{2m}] for one input and every layer, exact at finite width, biases zero:
    (2m−1)!! (E[z²])^m Π_{l'<l} Π_{k=1}^{m−1} (1 + 2k/n_{l'})   (PDLT reference §9, slt §5)."""
    _require_linear(spec)
    m = check_int("m", m, 1)
    if any(cb != 0 for cb in spec.C_b):
        raise ParameterError("C_b", spec.C_b, "all zero for the closed-form deep-linear moments (use exact_four_point for biases)")
    x = validate_inputs(inputs, spec)
    if x.shape[0] != 1:
        raise ParameterError("inputs", f"{x.shape[0]} inputs", "exactly one input")
    k = float(first_layer_kernel(spec, x)[0][0, 0])  # C_b = 0 here
    out, factor = [], 1.0
    dfact = math.prod(range(1, 2 * m, 2))
    for l in range(1, spec.depth + 1):
        if l > 1:
            k *= spec.C_W[l - 1]
            n = spec.width(l - 1)
            factor *= math.prod(1 + 2 * j / n for j in range(1, m))
        out.append(dfact * k**m * factor)
    return np.array(out)
