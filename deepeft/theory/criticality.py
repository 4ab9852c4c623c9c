"""Criticality: fixed points, susceptibilities, critical (C_b, C_W), universality classes,
large-depth asymptotics, learning-rate equivalence principle, optimal aspect ratio.

Formulas: PDLT ch. 5 (criticality), ch. 9 (learning rates), App. A (aspect ratio), as collected in
the project's PDLT reference §3, §5.3, §7, §8.  Definitions (at a single input, kernel K)::

    χ_∥(K) = C_W d⟨σ²⟩_K/dK,    χ_⊥(K) = C_W ⟨σ'²⟩_K,    criticality: K* = C_b + C_W⟨σ²⟩_{K*},
    χ_∥(K*) = χ_⊥(K*) = 1  ⇔ (for K* > 0) ⟨σσ''⟩_{K*} = d⟨σ²⟩/dK − ⟨σ'²⟩ = 0.

Universality classes: 'scale-invariant' (every K is a fixed point at C_b = 0, C_W = 1/A₂),
'K*=0' (σ(0) = 0, σ'(0) ≠ 0, a₁ < 0: the kernel decays to 0 as a power law), 'half-stable'
(K* > 0 with dχ_∥/dK ≠ 0: approached from one side only, e.g. GELU, SiLU), 'K*=0 (kink)'
(σ(0) = 0 and σ has no Taylor expansion at 0 — its one-sided derivatives differ, e.g. ELU, SELU,
CELU: ⟨σ²⟩_K = A₂K + B K^{3/2} + O(K²) with A₂ = (σ₁₊² + σ₁₋²)/2, B = √(2/π)(σ₁₊σ₂₊ − σ₁₋σ₂₋); for
B < 0, C_b = 0 and C_W = 1/A₂ are critical, and K^(l) → 4/(c² l²) with c = −B/A₂ — a 1/l² decay,
faster than the smooth K*=0 class's 1/l; χ_∥ ≈ 1 − 3/l, χ_⊥ ≈ 1 − 2/l), 'none'.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.optimize import brentq

from ..core import gaussian as gi
from ..core.activations import Activation, get_activation, scale_invariant_constants
from ..core.errors import ParameterError, check_int, check_nonnegative, check_positive
from ..core.spec import MLPSpec

K_SEARCH = (1e-3, 1e3)


@dataclass
class CriticalPoint:
    """Result of :func:`criticality`.  ``exists`` False means no (C_b ≥ 0, C_W) makes χ_∥ = χ_⊥ = 1."""

    activation: str
    universality_class: str
    exists: bool
    C_b: float | None = None
    C_W: float | None = None
    K_star: float | None = None  # None for the scale-invariant marginal line (any K)
    message: str = ""
    constants: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def kernel_moments(act: Activation, K):
    """(⟨σ²⟩, d⟨σ²⟩/dK, ⟨σ'²⟩) at K."""
    return gi.single(act, K, 2), gi.single(act, K, 2, dK=1), gi.single(act, K, 0, 2)


def chi_parallel(activation, K, C_W: float):
    act = get_activation(activation)
    return check_positive("C_W", C_W) * gi.single(act, K, 2, dK=1)


def chi_perp(activation, K, C_W: float):
    act = get_activation(activation)
    return check_positive("C_W", C_W) * gi.single(act, K, 0, 2)


def sigma_sigma_pp(act: Activation, K):
    """⟨σσ''⟩_K = d⟨σ²⟩/dK − ⟨σ'²⟩ (heat-equation identity; no σ'' needed)."""
    return gi.single(act, K, 2, dK=1) - gi.single(act, K, 0, 2)


def k0_coefficients(act: Activation) -> dict[str, float]:
    """Taylor-derived constants of the K* = 0 class (PDLT reference §3.2):
    a₁ = σ₃/σ₁ + ¾(σ₂/σ₁)², b₁ = σ₃/σ₁ + (σ₂/σ₁)², p_⊥ = b₁/a₁, and a₂ (the K³ coefficient of
    K ↦ C_W⟨σ²⟩_K at C_W = 1/σ₁²), which fixes the logarithmic correction to K^(l)."""
    s = act.taylor(5)
    s0, s1, s2, s3 = s[:4]
    if abs(s1) < 1e-12:
        return {"sigma0": s0, "sigma1": s1}
    # σ² = Σ c_k z^k with c_k = Σ_{p+q=k} σ_p σ_q /(p! q!); ⟨z^{2m}⟩ = (2m-1)!! K^m
    a1 = s3 / s1 + 0.75 * (s2 / s1) ** 2
    b1 = s3 / s1 + (s2 / s1) ** 2
    out = {"sigma0": s0, "sigma1": s1, "sigma2": s2, "sigma3": s3, "a1": a1, "b1": b1,
           "p_perp": b1 / a1 if a1 != 0 else float("nan")}
    if len(s) >= 6:
        # c_6 needs σ up to σ_5 (and σ_6·σ_0 = 0 when σ₀ = 0)
        c6 = sum(s[p] * s[6 - p] / (math.factorial(p) * math.factorial(6 - p)) for p in range(1, 6))
        out["a2"] = 15 * c6 / s1**2
    return out


#: one-sided derivatives are taken by autograd at ±KINK_EPS (autograd at 0 takes one branch of a kink)
KINK_EPS = 1e-150


def one_sided_taylor(act: Activation, order: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(σ_p(0⁺), σ_p(0⁻)), p = 0 … order: the derivatives of σ just right and just left of 0."""
    import torch

    from ..core.activations import derivatives_torch

    z = torch.tensor([KINK_EPS, -KINK_EPS], dtype=torch.float64)
    if act.slopes is not None:
        ds = act.derivatives(z, order)
    else:
        ds = derivatives_torch(act.fn, z, order)
    d = np.array([[float(v[0]), float(v[1])] for v in ds])
    return d[:, 0], d[:, 1]


def kink_coefficients(act: Activation) -> dict[str, float] | None:
    """Constants of an activation whose Taylor expansion at 0 does not exist (one-sided σ₁ or σ₂
    differ), from ⟨σ²⟩_K = A₂K + B K^{3/2} + O(K²) for z ~ N(0, K):
    E[z² 1{z≷0}] = K/2 and E[z³ 1{z≷0}] = ±√(2/π) K^{3/2}, so A₂ = (σ₁₊² + σ₁₋²)/2 and
    B = √(2/π)(σ₁₊σ₂₊ − σ₁₋σ₂₋) (σ(0) = 0).  None when σ is smooth through 0 to that order."""
    sp, sm = one_sided_taylor(act, 2)
    if np.allclose(sp, sm, rtol=1e-7, atol=1e-10):
        return None
    A2 = 0.5 * (sp[1] ** 2 + sm[1] ** 2)
    B = math.sqrt(2.0 / math.pi) * (sp[1] * sp[2] - sm[1] * sm[2])
    out = {"sigma0": float(sp[0]), "sigma1_plus": float(sp[1]), "sigma1_minus": float(sm[1]),
           "sigma2_plus": float(sp[2]), "sigma2_minus": float(sm[2]), "A2": float(A2), "B": float(B)}
    if A2 > 0:
        out["c"] = -B / A2
    return out


def fixed_point(activation, C_b: float, C_W: float, K0: float = 1.0, max_iter: int = 100000, tol: float = 1e-13) -> float:
    """Stable fixed point K* of K ↦ C_b + C_W⟨σ²⟩_K reached from K0 by iteration (power-law
    approach at criticality is accelerated by a root finder once bracketed)."""
    act = get_activation(activation)
    C_b, C_W = check_nonnegative("C_b", C_b), check_positive("C_W", C_W)
    f = lambda k: C_b + C_W * float(gi.single(act, k, 2)) - k  # noqa: E731
    K = K0
    for _ in range(200):
        Kn = C_b + C_W * float(gi.single(act, K, 2))
        if not np.isfinite(Kn) or Kn > 1e12:
            return float("inf")
        if abs(Kn - K) <= tol * max(1.0, K):
            return Kn
        K = Kn
    # slow (critical) approach: bracket the root between K and 0 or K and a larger value
    lo, hi = (0.0, K) if f(K) < 0 else (K, K * 2 + 1)
    if f(lo) * f(hi) > 0:
        for _ in range(60):
            hi = hi * 2
            if f(lo) * f(hi) <= 0 or hi > 1e12:
                break
    if f(lo) * f(hi) > 0:
        return float(K)
    if f(lo) == 0:
        return lo
    return brentq(f, lo, hi, xtol=1e-14, rtol=1e-13, maxiter=500)


def criticality(activation) -> CriticalPoint:
    """Critical initialisation (C_b, C_W) of an activation and its universality class.

    Scale-invariant σ: C_b = 0, C_W = 1/A₂.  K* = 0 class: C_b = 0, C_W = 1/σ₁².  Otherwise the
    roots of ⟨σσ''⟩_K on K ∈ [1e-3, 1e3] are bracketed on a log grid and refined with Brent's
    method; C_W = 1/⟨σ'²⟩_{K*}, C_b = K* − C_W⟨σ²⟩_{K*} must be ≥ 0."""
    act = get_activation(activation)
    if act.slopes is not None:
        c = scale_invariant_constants(act)
        return CriticalPoint(act.name, "scale-invariant", True, 0.0, 1.0 / c["A2"], None,
                             "every K is a fixed point (marginal line); χ_∥ = χ_⊥ = C_W·A₂ = 1", c)
    kink = kink_coefficients(act)
    if kink is not None and abs(kink["sigma0"]) < 1e-12 and kink.get("c", 0.0) > 0:
        c = kink["c"]
        return CriticalPoint(act.name, "K*=0 (kink)", True, 0.0, 1.0 / kink["A2"], 0.0,
                             f"K* = 0 with a kink at 0 (one-sided derivatives differ; no Taylor expansion): "
                             f"K^(l) ≈ 4/(c²l²) = {4 / c ** 2:.6g}/l², c = {c:.6g} (faster than the smooth K*=0 class's 1/l)",
                             kink)
    k0 = k0_coefficients(act)
    if kink is not None:  # the Taylor-based K*=0 constants do not exist (autograd would take one side)
        k0 = dict(kink, sigma1=float("nan"), a1=float("nan"))
    if kink is None and abs(k0["sigma0"]) < 1e-12 and abs(k0["sigma1"]) > 1e-12 and k0["a1"] < 0:
        cw = 1.0 / k0["sigma1"] ** 2
        return CriticalPoint(act.name, "K*=0", True, 0.0, cw, 0.0,
                             f"K* = 0 universality class: K^(l) ≈ 1/({-k0['a1']:.6g}·l)", k0)
    grid = np.geomspace(*K_SEARCH, 241)
    vals = sigma_sigma_pp(act, grid)
    roots = []
    for i in np.nonzero(np.sign(vals[:-1]) * np.sign(vals[1:]) < 0)[0]:
        roots.append(brentq(lambda k: float(sigma_sigma_pp(act, k)), grid[i], grid[i + 1], xtol=1e-14, rtol=1e-14))
    for Ks in roots:
        g, dg, gp = (float(v) for v in kernel_moments(act, Ks))
        cw = 1.0 / gp
        cb = Ks - cw * g
        if cb >= -1e-12:
            dchi = cw * float(gi.single(act, Ks, 2, dK=2))
            side = "above" if dchi < 0 else "below"
            consts = dict(k0, dchi_par_dK=dchi, stable_from=side)
            return CriticalPoint(act.name, "half-stable", True, max(cb, 0.0), cw, Ks,
                                 f"critical at K* = {Ks:.8g} > 0; dχ_∥/dK = {dchi:.3g} ≠ 0, so the fixed point "
                                 f"attracts only from {side} (half-stable), approached as a power law", consts)
    why = []
    if kink is not None:
        why.append(f"σ has a kink at 0 (σ₁ = {kink['sigma1_plus']:.4g}/{kink['sigma1_minus']:.4g}, σ₂ = "
                   f"{kink['sigma2_plus']:.4g}/{kink['sigma2_minus']:.4g} right/left) with B = {kink['B']:.4g} ≥ 0 "
                   "or σ(0) ≠ 0 (K = 0 does not attract)")
    elif abs(k0["sigma0"]) >= 1e-12:
        why.append(f"σ(0) = {k0['sigma0']:.4g} ≠ 0 (no K* = 0 fixed point)")
    elif abs(k0["sigma1"]) < 1e-12:
        why.append("σ'(0) = 0 (no K* = 0 fixed point)")
    elif k0["a1"] >= 0:
        why.append(f"a₁ = {k0['a1']:.4g} ≥ 0 (K = 0 repels)")
    if not roots:
        why.append(f"⟨σσ''⟩_K has no zero for K in [{K_SEARCH[0]:g}, {K_SEARCH[1]:g}]")
    else:
        why.append("the zeros of ⟨σσ''⟩_K need C_b < 0")
    return CriticalPoint(act.name, "none", False, None, None, None,
                         f"{act.name} cannot be tuned to criticality: " + "; ".join(why), k0)


def critical_spec(activation, depth: int, width, input_dim: int, **kwargs) -> MLPSpec:
    """An MLPSpec at the activation's critical (C_b, C_W); clear error if none exists.
    With ``residual=(xi, gamma)`` the branch variance is rescaled so that ξ² + γ²C_W A₂ = 1
    (scale-invariant) or ξ² + γ²C_Wσ₁² = 1 (K* = 0), i.e. C_W → (1 − ξ²)/γ² · C_W,crit."""
    cp = criticality(activation)
    if not cp.exists:
        raise ParameterError("activation", cp.activation, "an activation with a critical point", cp.message)
    cw = cp.C_W
    res = kwargs.get("residual")
    if res is not None:
        xi, gamma = res
        if cp.universality_class == "half-stable":
            raise ParameterError("residual", res, "None for half-stable activations (criticality of residual "
                                 "GELU/SiLU networks is not implemented)")
        if not (0 <= xi < 1) or gamma <= 0:
            raise ParameterError("residual", res, "0 <= xi < 1 and gamma > 0 for a critical residual MLP")
        depth_i = check_int("depth", depth, 1)
        scale = (1 - xi**2) / gamma**2
        cw = [cp.C_W if (l == 1 or l == depth_i) else cp.C_W * scale for l in range(1, depth_i + 1)]
    return MLPSpec.make(activation, depth, width, input_dim, C_W=cw, C_b=cp.C_b, **kwargs)


def scale_invariant_nu(activation) -> float:
    return scale_invariant_constants(get_activation(activation))["nu"]


def residual_nu(activation, skip: float, depth: int = 48) -> float:
    """Growth coefficient ν_eff of V/(nK²) ≈ ν_eff·l/n for a critical residual MLP with skip
    strength ξ = ``skip`` (branch γ² = 1 − ξ², so the critical branch keeps the plain C_W).

    ξ = 0: ν = 3A₄/A₂² − 1 (scale-invariant) or 2/3 (K* = 0).  ξ > 0: the slope per layer of
    n·V/(nK²) between layers depth−10 and depth, from the linear-response theory of
    :mod:`deepeft.theory.residual` (the closed form (1−ξ²)[(1−ξ²)ν + 4ξ²] of the single-input
    recursion is exact only for linear σ; for ReLU it underestimates, e.g. 3.56 instead of 6.50 at ξ = 0.5)."""
    cp = criticality(activation)
    s2 = check_nonnegative("skip", skip) ** 2
    if s2 >= 1:
        raise ParameterError("skip", skip, "0 <= skip < 1")
    if cp.universality_class not in ("scale-invariant", "K*=0"):
        raise ParameterError("activation", cp.activation, "a scale-invariant or K*=0 activation", cp.message)
    if s2 == 0:
        return cp.constants["nu"] if cp.universality_class == "scale-invariant" else 2.0 / 3.0
    depth = check_int("depth", depth, 14)
    key = (cp.activation, float(skip), depth)
    if key not in _NU_CACHE:
        from .residual import residual_single_input
        spec = critical_spec(activation, depth, 10**6, 1, residual=(float(skip), math.sqrt(1 - s2)))
        r = residual_single_input(spec, 1.0)
        vn = r["V"] / r["K"] ** 2
        _NU_CACHE[key] = float((vn[-2] - vn[-12]) / 10)  # hidden layers only (the last one is plain)
    return _NU_CACHE[key]


_NU_CACHE: dict = {}


def optimal_aspect_ratio(activation, output_width: int = 1, skip: float = 0.0) -> float:
    """r* = (L/n)* = 4/(20 + 3 n_L) / ν_eff (PDLT App. A as in the reference §7)."""
    n_L = check_int("output_width", output_width, 1)
    return 4.0 / (20 + 3 * n_L) / residual_nu(activation, skip)


def effective_aspect_ratio(activation, depth: int, width: int, skip: float = 0.0) -> float:
    """ν_eff·L/n: the single parameter that controls the 1/n corrections of a critical (residual) MLP
    (V/(nK²) ≈ ν_eff·L/n; compare with :func:`optimal_aspect_ratio`)."""
    L, n = check_int("depth", depth, 1), check_int("width", width, 1)
    return residual_nu(activation, skip) * L / n


def large_depth_asymptotics(activation, layers) -> dict:
    """Leading large-depth behaviour at criticality (PDLT ch. 5 / reference §3–4.4).

    Returns per-layer arrays: K (kernel; for K*=0 with its log correction
    1/K ≈ −a₁ l + ((a₂ − a₁²)/a₁) ln l), V_norm_per_width (V/(nK²) × n), K1, chi_par, chi_perp,
    and the constants used."""
    act = get_activation(activation)
    l = np.asarray(layers, dtype=float)
    if np.any(l < 1):
        raise ParameterError("layers", layers, "layer indices >= 1")
    cp = criticality(act)
    if cp.universality_class == "scale-invariant":
        nu = cp.constants["nu"]
        return {"class": cp.universality_class, "K": np.ones_like(l), "K_note": "constant: K^(l) = K^(1)",
                "V_norm_per_width": nu * (l - 1), "K1": np.zeros_like(l), "chi_par": np.ones_like(l),
                "chi_perp": np.ones_like(l), "constants": {"nu": nu}}
    if cp.universality_class == "K*=0":
        a1, b1 = cp.constants["a1"], cp.constants["b1"]
        a2 = cp.constants.get("a2", 0.0)
        invK = -a1 * l + ((a2 - a1**2) / a1) * np.log(l)
        return {"class": cp.universality_class, "K": 1 / invK, "K_leading": 1 / (-a1 * l),
                "V_norm_per_width": (2.0 / 3.0) * l, "K1": np.full_like(l, 1 / (3 * a1)),
                "chi_par": 1 - 2 / l, "chi_perp": 1 - (b1 / a1) / l,
                "constants": {"a1": a1, "b1": b1, "a2": a2, "p_perp": b1 / a1,
                              "log_coefficient": (a2 - a1**2) / a1}}
    if cp.universality_class == "K*=0 (kink)":
        c = cp.constants["c"]
        return {"class": cp.universality_class, "K": 4.0 / (c * c * l * l), "chi_par": 1 - 3 / l, "chi_perp": 1 - 2 / l,
                "constants": {"c": c, "A2": cp.constants["A2"], "B": cp.constants["B"]}}
    if cp.universality_class == "half-stable":
        d = abs(cp.constants["dchi_par_dK"])
        return {"class": cp.universality_class, "K": cp.K_star + np.sign(-cp.constants["dchi_par_dK"]) * 2 / (d * l),
                "chi_par": np.ones_like(l), "chi_perp": np.ones_like(l),
                "constants": {"K_star": cp.K_star, "dchi_par_dK": cp.constants["dchi_par_dK"]}}
    raise ParameterError("activation", act.name, "an activation with a critical point", cp.message)


def equivalence_learning_rates(activation, depth: int, lambda_b: float = 1.0, lambda_W: float = 1.0):
    """Per-layer (λ_b^(l), λ_W^(l)), l = 1 … L, from the learning-rate equivalence principle
    (every layer contributes O(1/L) to an O(1) NTK; PDLT ch. 9, reference §5.3):
    scale-invariant and half-stable: λ/L; K* = 0: λ_b^(l) = λ̃_b L^{p⊥−1}/l^{p⊥}, λ_W^(l) = λ̃_W (L/l)^{p⊥−1}."""
    L = check_int("depth", depth, 1)
    lb, lw = check_nonnegative("lambda_b", lambda_b), check_nonnegative("lambda_W", lambda_W)
    cp = criticality(activation)
    l = np.arange(1, L + 1, dtype=float)
    if cp.universality_class in ("scale-invariant", "half-stable"):
        return np.full(L, lb / L), np.full(L, lw / L)
    if cp.universality_class == "K*=0":
        p = cp.constants["p_perp"]
        return lb * L ** (p - 1) / l**p, lw * (L / l) ** (p - 1)
    if cp.universality_class == "K*=0 (kink)":
        raise ParameterError("activation", cp.activation, "a scale-invariant, half-stable or smooth K*=0 activation "
                             "(the equivalence principle is not derived for the kink class, K ~ 1/l²)")
    raise ParameterError("activation", cp.activation, "an activation with a critical point", cp.message)


def phase_boundary(activation, C_b_values, C_W_range=(0.05, 20.0)) -> np.ndarray:
    """C_W on the order-to-chaos boundary χ_⊥(K*) = 1 for each C_b (NaN where no crossing lies in
    C_W_range; these NaNs mark 'no boundary here', they are not computation failures)."""
    act = get_activation(activation)
    out = []
    for cb in np.atleast_1d(C_b_values):
        cb = check_nonnegative("C_b", cb)

        def h(cw):
            Ks = fixed_point(act, cb, cw)
            if not np.isfinite(Ks):
                return 1.0
            return cw * float(gi.single(act, max(Ks, 1e-12), 0, 2)) - 1.0

        lo, hi = C_W_range
        try:
            out.append(brentq(h, lo, hi, xtol=1e-10) if h(lo) * h(hi) < 0 else float("nan"))
        except ValueError:
            out.append(float("nan"))
    return np.array(out)


def phase_boundary_curve(activation, C_b_max: float, n: int = 400) -> tuple[np.ndarray, np.ndarray] | None:
    """The χ_⊥ = 1 curve in the (C_b, C_W) plane, traced parametrically by the fixed point K*:
    χ_⊥(K*) = C_W⟨σ'²⟩_{K*} = 1 and K* = C_b + C_W⟨σ²⟩_{K*} give C_W = 1/⟨σ'²⟩_{K*},
    C_b = K* − C_W⟨σ²⟩_{K*}.  Only stable fixed points (χ_∥(K*) ≤ 1) with 0 ≤ C_b ≤ C_b_max are kept.
    Scale-invariant σ: ⟨σ'²⟩ = A₂ for every K, so the curve is C_W = 1/A₂ for all C_b.  The K* → 0
    end of a K* = 0-class activation is (0, 1/σ₁²).  Returns (C_b, C_W) arrays, or None."""
    act = get_activation(activation)
    cp = criticality(act)
    if cp.universality_class == "scale-invariant":
        cb = np.linspace(0.0, C_b_max, 2)
        return cb, np.full_like(cb, 1.0 / cp.constants["A2"]) if "A2" in cp.constants else np.full_like(cb, cp.C_W)
    K = np.geomspace(1e-4, 1e3, n)
    g, dg, gp = (np.asarray(v, dtype=np.float64) for v in kernel_moments(act, K))
    with np.errstate(divide="ignore", invalid="ignore"):
        cw = 1.0 / gp
        cb = K - cw * g
        chi_par = cw * dg
    ok = np.isfinite(cw) & np.isfinite(cb) & (cb >= -1e-12) & (cb <= C_b_max) & (chi_par <= 1.0 + 1e-9)
    if cp.universality_class == "K*=0" and cp.C_W is not None:
        cb, cw, ok = np.r_[0.0, cb], np.r_[cp.C_W, cw], np.r_[True, ok]
    if ok.sum() < 2:
        return None
    cb, cw = np.maximum(cb[ok], 0.0), cw[ok]
    order = np.argsort(cb, kind="stable")
    return cb[order], cw[order]
