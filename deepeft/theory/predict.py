"""``predict``: theory → :class:`~deepeft.core.observables.Observables` (same type as measurements)."""
from __future__ import annotations

import numpy as np

from ..core.errors import AccuracyWarning
from ..core.observables import Observables
from ..core.quantities import canonical
from ..core.spec import MLPSpec, validate_inputs
from .ntk import fluctuation_table
from .recursion import propagate


def predict(spec: MLPSpec, inputs, order: str = "1/n", vertex: str = "auto") -> Observables:
    """Infinite-width (+ first 1/n correction) predictions for every layer.

    ``order='1/n'`` adds the vertex V, the kernel correction K1, ``kernel = K + K1/n_{l-1}`` and the
    normalised vertex ``V_norm = V_(αα)(αα)/(n_{l-1}K_αα²)``.  With ``vertex='diagonal'`` (default for
    N > 8 inputs) only the diagonal V_(αα)(αα) and K1_αα are propagated, so ``kernel`` carries the
    1/n correction on its diagonal only (``meta['kernel_offdiagonal_order'] = 'infinite'``).
    For non-residual networks ``order='1/n'`` also gives the NTK's finite-width statistics per input
    (:mod:`deepeft.theory.ntk`): ``Theta1``, ``NTK_A``, ``NTK_B``, ``NTK_D``, ``NTK_F`` (L, N),
    ``Theta_var`` = Var(Ĥ_ii) = (A + 2B)/n_{l-1} (L, N) and ``ntk_mean`` = Θ with Θ + Θ1/n_{l-1} on
    the diagonal (the theory of the measured NTK mean ``Theta``; ``Theta`` here is the infinite-width
    Θ).  Names, shapes and old aliases: the registry, :mod:`deepeft.core.quantities`.
    """
    if not isinstance(spec, MLPSpec):
        from ..core.errors import ParameterError
        raise ParameterError("spec", type(spec).__name__, "an MLPSpec")
    x_all = validate_inputs(inputs, spec)
    # identical inputs give identical rows and columns: compute on the distinct ones and expand
    # (the two-point derivative integrals of kinked σ are singular at exactly coincident inputs)
    x, inverse = np.unique(x_all, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    if x.shape[0] == x_all.shape[0]:
        x, inverse = x_all, np.arange(x_all.shape[0])
    # one pass over the layers: kernels, vertex and (non-residual, 1/n) the NTK statistics
    with np.errstate(over="ignore", invalid="ignore"):  # a non-finite result is one clear error below
        rec = propagate(spec, x, order=order, vertex=vertex, ntk_stats=order == "1/n" and spec.residual is None)
    N = x.shape[0]
    idx = np.arange(N)
    fan = rec.fan_in
    values = {"K": rec.K, "Theta": rec.Theta, "chi_par": rec.chi_par, "chi_perp": rec.chi_perp}
    meta = {"order": order, "fan_in": fan.tolist()}
    if order == "1/n":
        values["V_diag"] = rec.V_diag
        Kd = rec.K[:, idx, idx]
        with np.errstate(divide="ignore", invalid="ignore"):
            values["V_norm"] = np.where(Kd > 0, rec.V_diag / (fan[:, None] * np.where(Kd > 0, Kd, 1.0) ** 2), 0.0)
        if rec.V is not None:
            values["V"] = rec.V
            values["K1"] = rec.K1
            values["kernel"] = rec.K + rec.K1 / fan[:, None, None]
            meta["vertex"] = "full"
        else:
            K1 = np.zeros_like(rec.K)
            K1[:, idx, idx] = rec.K1_diag
            values["K1"] = K1
            values["kernel"] = rec.K + K1 / fan[:, None, None]
            meta["vertex"] = "diagonal"
            meta["kernel_offdiagonal_order"] = "infinite"
        if spec.residual is None:
            fl = fluctuation_table(rec)
            for k in ("Theta1", "A", "B", "D", "F", "ntk_var"):  # under their registered names
                values[canonical(k, warn=False)] = fl[k]
            values["ntk_mean"] = rec.Theta.copy()
            values["ntk_mean"][:, idx, idx] = fl["ntk_mean"]
    else:
        values["kernel"] = rec.K
    if x.shape[0] != x_all.shape[0]:
        values = {k: _expand(v, inverse, x.shape[0]) for k, v in values.items()}
    for k, v in values.items():
        if not np.all(np.isfinite(v)):
            from ..core.errors import DeepEFTError
            raise DeepEFTError(f"the prediction of {k!r} is not finite for these inputs and initialisation "
                               f"(C_W={spec.C_W}, C_b={spec.C_b}); the recursion left its domain of validity")
    _warn_outside_regime(spec, rec, order, meta)
    return Observables(spec=spec, inputs=x_all, source="theory", values=values, meta=meta)


#: Depth-to-width ratio Σ_{k≤l} 1/n_{k-1} (= l/n at equal widths) beyond which the truncated 1/n
#: expansion was measured to fail: first layer where 1024-network ensembles at n = 32 departed from
#: the O(1/n) kernel/vertex by more than 4σ (issue 11's measurement on main, seed 0):
#: ReLU at ℓ/n ≈ 0.09, tanh at ℓ/n ≈ 0.15.  The neglected terms are O((ℓ/n)²) (PDLT §11).
MEASURED_BREAKDOWN = {"scale-invariant": 0.09, "smooth": 0.15}
#: |K| above this is reported as the chaotic phase (the kernel grows like χ∥^ℓ)
_CHAOTIC_K = 1e50


class ExpansionRegimeWarning(AccuracyWarning):
    """predict() is outside the regime where the 1/n expansion was measured to hold (or in the chaotic
    phase).  Studies silence it: each point stores the measured breakdown layer beside the theory."""


def _is_critical(spec: MLPSpec) -> bool:
    from .criticality import criticality

    try:
        cp = criticality(spec.activation)
    except Exception:  # a user callable whose criticality cannot be decided: treat as off-critical
        return False
    return bool(cp.exists) and all(np.isclose(cw, cp.C_W, rtol=1e-6) and np.isclose(cb, cp.C_b, rtol=1e-6, atol=1e-12)
                                   for cw, cb in zip(spec.C_W, spec.C_b))


def _warn_outside_regime(spec: MLPSpec, rec, order: str, meta: dict) -> None:
    """Say (AccuracyWarning, and in ``meta['regime']``) when the prediction is outside the regime
    where it was measured to hold: the 1/n expansion at large ℓ/n, or a kernel deep in the chaotic phase."""
    import warnings

    L = spec.depth
    ratio = np.cumsum([1.0 / spec.fan_in(l) for l in range(1, L + 1)]) - 1.0 / spec.fan_in(1)  # layer 1 is exact
    # smooth σ at criticality keeps the looser measured limit; kinked σ or off-critical initialisation the tighter
    family = "scale-invariant" if spec.activation.slopes is not None or not _is_critical(spec) else "smooth"
    limit = MEASURED_BREAKDOWN[family]
    regime = {"depth_to_width": float(ratio[-1]), "breakdown_ratio": limit, "trusted_until_layer": L}
    if order == "1/n" and ratio[-1] > limit:
        first = int(np.argmax(ratio > limit)) + 1
        regime["trusted_until_layer"] = first - 1
        warnings.warn(f"the 1/n expansion is outside its measured regime from layer {first} on "
                      f"(Σ1/n = ℓ/n reaches {ratio[-1]:.3g} > {limit}; measured breakdown at n = 32: ReLU "
                      f"ℓ/n ≈ {MEASURED_BREAKDOWN['scale-invariant']}, tanh ℓ/n ≈ {MEASURED_BREAKDOWN['smooth']}): "
                      "treat the 1/n quantities of deeper layers as qualitative, or widen the network",
                      ExpansionRegimeWarning, stacklevel=3)
    kmax = float(np.max(np.abs(rec.K)))
    if kmax > _CHAOTIC_K:
        first = int(np.argmax(np.max(np.abs(rec.K).reshape(L, -1), axis=1) > _CHAOTIC_K)) + 1
        regime["chaotic_from_layer"] = first
        warnings.warn(f"the kernel grows geometrically and exceeds {_CHAOTIC_K:g} from layer {first} on "
                      f"(χ⊥ = {float(rec.chi_perp[0].max()):.3g} at layer 1): the network is deep in the chaotic "
                      "phase; use critical initialisation (deepeft.theory.critical_spec) or reduce C_W",
                      ExpansionRegimeWarning, stacklevel=3)
    meta["regime"] = regime


def _expand(v: np.ndarray, inverse: np.ndarray, n_unique: int) -> np.ndarray:
    """Re-index every input axis (axes ≥ 1 of length n_unique) from distinct inputs to all inputs."""
    for ax in range(1, v.ndim):
        if v.shape[ax] == n_unique:
            v = np.take(v, inverse, axis=ax)
    return v


def output_density(obs: Observables, z, layer: int | None = None, alpha: int = 0) -> np.ndarray:
    """Predicted density of one preactivation z_{i;α} at ``layer`` (default: last), to O(1/n):
    the Edgeworth form p(z) = N(z; 0, G)[1 + V/(8 n G²) He₄(z/√G)], G = K + K1/n (PDLT ch. 4:
    the connected 4-pt function 3V/n is the only 1/n non-Gaussianity of a single neuron)."""
    from ..core.errors import ParameterError

    l = obs.depth if layer is None else layer
    if not 1 <= l <= obs.depth:
        raise ParameterError("layer", layer, f"1 … {obs.depth}")
    z = np.asarray(z, dtype=float)
    n = obs.spec.fan_in(l)
    G = float(obs["kernel"][l - 1, alpha, alpha])
    u = z / np.sqrt(G)
    gauss = np.exp(-0.5 * u**2) / np.sqrt(2 * np.pi * G)
    if "V_diag" not in obs:
        return gauss
    v = float(obs["V_diag"][l - 1, alpha]) / (n * G**2)
    return gauss * (1 + v / 8 * (u**4 - 6 * u**2 + 3))
