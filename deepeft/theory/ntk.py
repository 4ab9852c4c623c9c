"""NTK at finite width, one input at a time: the 1/n mean correction Θ1 and the fluctuation
tensors A, B (NTK–NTK) and D, F (NTK–preactivation).

Single-input reductions of PDLT ch. 8 (as collected and Monte-Carlo checked in the project's PDLT
reference §5.4–5.5); all expectations at K = K^(l), with Θ = Θ^(l) and (C_W, λ) of layer l+1::

    B' = C_W²⟨σ'⁴⟩Θ² + r χ_⊥² B
    F' = C_W²⟨σ²σ'²⟩Θ + r χ_∥² F
    D' = C_W[λ_W Var(σ²) + C_W Θ Cov(σ², σ'²)] + r χ_∥ V ∂_K⟨Ω⟩ + r χ_∥ χ_⊥ D
    A' = Var(Ω) + r V (∂_K⟨Ω⟩)² + r χ_⊥² A + 2 r χ_⊥ ∂_K⟨Ω⟩ D
    Θ1' = r{λ_W[K1 ∂_K⟨σ²⟩ + (V/8)⟨(σ²)''''⟩]
            + C_W[⟨σ'²⟩Θ1 + Θ(K1 ∂_K⟨σ'²⟩ + (V/8)⟨(σ'²)''''⟩) + (D + 2F) ∂_K⟨σ'²⟩]}

with Ω = λ_W σ² + C_W Θ σ'², ∂_K⟨Ω⟩ = λ_W χ_∥/C_W + Θ ∂_Kχ_⊥, ⟨f''''⟩ = 4 d²⟨f⟩/dK².
What a Monte-Carlo ensemble measures (neurons i ≠ j of the same layer, normalised by n_{l-1}):
Var(Ĥ_ii) = (A + 2B)/n, Cov(Ĥ_ii, Ĥ_jj) = A/n, E[Ĥ_ij²] = B/n, Cov(Ĥ_ii, z_j²) = D/n,
Cov(Ĥ_ii, z_i²) = (D + 2F)/n, E[Ĥ_ij z_i z_j] = F/n, E[Ĥ_ii] = Θ + Θ1/n.
"""
from __future__ import annotations

import numpy as np

from ..core.errors import ParameterError
from ..core.spec import MLPSpec, validate_inputs
from .recursion import RecursionResult, propagate


def ntk_fluctuations(spec: MLPSpec, inputs) -> dict[str, np.ndarray]:
    """Per-layer (L, N) arrays Theta, Theta1, A, B, D, F, V, K, K1 for each input separately
    (the single-input recursions of :func:`deepeft.theory.recursion.propagate`, ``ntk_stats=True``)."""
    if spec.residual is not None:
        raise ParameterError("residual", spec.residual, "None (NTK fluctuations of residual MLPs are not implemented)")
    x = validate_inputs(inputs, spec)
    return fluctuation_table(propagate(spec, x, order="1/n", vertex="single", ntk_stats=True))


def fluctuation_table(rec: RecursionResult) -> dict[str, np.ndarray]:
    """The per-input NTK statistics of a :class:`RecursionResult` computed with ``ntk_stats=True``, with
    ``ntk_var`` = (A + 2B)/n_{l-1} and ``ntk_mean`` = Θ + Θ1/n_{l-1} (diagonal)."""
    idx = np.arange(rec.K.shape[1])
    out = {"K": rec.K[:, idx, idx], "Theta": rec.Theta[:, idx, idx], "V": rec.V_diag, "K1": rec.K1_diag, **rec.ntk}
    fan = rec.fan_in[:, None]
    out["ntk_var"] = (out["A"] + 2 * out["B"]) / fan
    out["ntk_mean"] = out["Theta"] + out["Theta1"] / fan
    return out
