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

from ..core import gaussian as gi
from ..core.errors import ParameterError
from ..core.spec import MLPSpec, validate_inputs


def ntk_fluctuations(spec: MLPSpec, inputs) -> dict[str, np.ndarray]:
    """Per-layer (L, N) arrays Theta, Theta1, A, B, D, F, V, K, K1 for each input separately."""
    if spec.residual is not None:
        raise ParameterError("residual", spec.residual, "None (NTK fluctuations of residual MLPs are not implemented)")
    x = validate_inputs(inputs, spec)
    act = spec.activation
    K = spec.C_b[0] + spec.C_W[0] * np.sum(x * x, axis=1) / spec.input_dim
    Th = spec.lambda_b[0] + spec.lambda_W[0] * np.sum(x * x, axis=1) / spec.input_dim
    N = len(K)
    z = np.zeros(N)
    V, K1, A, B, D, F, T1 = z, z, z, z, z, z, z
    rows = {k: [] for k in ("K", "Theta", "V", "K1", "A", "B", "D", "F", "Theta1")}

    def push():
        for k, v in (("K", K), ("Theta", Th), ("V", V), ("K1", K1), ("A", A), ("B", B), ("D", D), ("F", F), ("Theta1", T1)):
            rows[k].append(np.array(v, dtype=float))

    push()
    req = [(2, 0, 0), (4, 0, 0), (2, 0, 1), (2, 0, 2), (0, 2, 0), (0, 2, 1), (0, 2, 2), (0, 4, 0), (2, 2, 0)]
    for l in range(1, spec.depth):
        t = gi.single_table(act, K, req)
        g, g4, dg, d2g = t[(2, 0, 0)], t[(4, 0, 0)], t[(2, 0, 1)], t[(2, 0, 2)]
        gp, dgp, d2gp, gp4, g22 = t[(0, 2, 0)], t[(0, 2, 1)], t[(0, 2, 2)], t[(0, 4, 0)], t[(2, 2, 0)]
        cw, cb, lw, lb = spec.C_W[l], spec.C_b[l], spec.lambda_W[l], spec.lambda_b[l]
        r = spec.fan_in(l + 1) / spec.fan_in(l)
        chi_par, chi_perp, dchi_perp = cw * dg, cw * gp, cw * dgp
        var_s2, var_sp2, cov = g4 - g**2, gp4 - gp**2, g22 - g * gp
        dOmega = lw * dg + Th * dchi_perp
        var_Omega = lw**2 * var_s2 + 2 * lw * cw * Th * cov + cw**2 * Th**2 * var_sp2
        B_n = cw**2 * gp4 * Th**2 + r * chi_perp**2 * B
        F_n = cw**2 * g22 * Th + r * chi_par**2 * F
        D_n = cw * (lw * var_s2 + cw * Th * cov) + r * chi_par * V * dOmega + r * chi_par * chi_perp * D
        A_n = var_Omega + r * V * dOmega**2 + r * chi_perp**2 * A + 2 * r * chi_perp * dOmega * D
        T1_n = r * (lw * (K1 * dg + V / 8 * 4 * d2g)
                    + cw * (gp * T1 + Th * (K1 * dgp + V / 8 * 4 * d2gp) + (D + 2 * F) * dgp))
        V_n = cw**2 * var_s2 + r * chi_par**2 * V
        K1_n = r * (chi_par * K1 + cw / 8 * V * 4 * d2g)
        Th = lb + lw * g + chi_perp * Th
        K = cb + cw * g
        V, K1, A, B, D, F, T1 = V_n, K1_n, A_n, B_n, D_n, F_n, T1_n
        push()
    out = {k: np.array(v) for k, v in rows.items()}
    fan = np.array([spec.fan_in(l) for l in range(1, spec.depth + 1)], dtype=float)[:, None]
    out["ntk_var"] = (out["A"] + 2 * out["B"]) / fan
    out["ntk_mean"] = out["Theta"] + out["Theta1"] / fan
    return out
