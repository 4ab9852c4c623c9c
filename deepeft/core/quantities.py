"""The observable registry: one record per quantity, and the one z-score rule.

Every quantity deepeft predicts or measures has exactly one :class:`Quantity` record here, under
one name.  ``theory.predict`` and ``ensemble.measure`` return their arrays under these names;
``ensemble.compare``, study files, the study store and the report read names, theory keys, labels
and the z-score policy from the records, never from tables of their own.  Old names keep working as
aliases (with a :class:`DeprecationWarning`).

Arrays are layer-first (index 0 ↔ layer ℓ = 1); N = number of inputs; 1/n objects are normalised by
n_{ℓ-1} (:mod:`deepeft.conventions`).

The z-score rule (:func:`zscore`), used by compare, the study points, the report and ``check``:
z = (measured − theory)/SE.  Where the standard error vanishes (a deterministic entry, e.g. the
first layer's kernel, computed exactly from the inputs) there is no noise scale: the comparison is
exact-or-not at floating-point tolerance — ``status`` EXACT with z = 0 when |measured − theory| ≤
rtol·scale, MISMATCH with z = NaN otherwise (flagged, never ±∞ or 1e14).  ``scale`` is the largest
|theory| of the quantity (over all layers and entries), so quantities that vanish at some layer
(V/(nK²) at ℓ = 1) are judged on the quantity's own scale.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from .errors import ParameterError

# ----------------------------------------------------------------------------------------------
# records
# ----------------------------------------------------------------------------------------------
TheoryRule = Callable[[Mapping[str, np.ndarray]], "np.ndarray | None"]


@dataclass(frozen=True)
class Quantity:
    """One quantity.

    ``theory``: the key of :func:`deepeft.theory.predict`'s output holding the theory's prediction
    (or a function of those outputs; None = not predicted).  ``theory_fallbacks``: keys used when
    ``theory`` is absent (e.g. at ``order='infinite'``).  ``theory_form``: 'same' (same shape as the
    measurement) or 'diag' (the theory predicts the α = β entries only, as an (L, N) array; the
    other entries are NaN when compared).  ``estimator``: the :func:`deepeft.ensemble.measure`
    statistic group that estimates it ('kernel', 'ntk', 'ntk_fluct'), 'derived' for quantities
    computed by ``derive`` from other quantities (on the theory values and on every jackknife
    replica of the estimates alike), or None for theory-only quantities.
    """

    name: str
    shape: str
    meaning: str
    label: str  # matplotlib mathtext, for figure axes
    text: str  # plain text, for tables and the CLI
    theory: str | TheoryRule | None = None
    theory_fallbacks: tuple[str, ...] = ()
    theory_form: str = "same"
    estimator: str | None = None
    estimate: str = ""  # how the ensemble estimates it (documentation)
    normalisation: str = ""  # units / 1/n convention
    z_policy: str = "standard"  # 'standard': the one rule of zscore(); 'none': never z-scored
    aliases: tuple[str, ...] = ()
    derive: Callable[[Mapping[str, np.ndarray]], np.ndarray] | None = None
    needs: tuple[str, ...] = ()  # quantities ``derive`` reads

    @property
    def measured(self) -> bool:
        return self.estimator is not None

    @property
    def theory_only(self) -> bool:
        return self.estimator is None


_REGISTRY: dict[str, Quantity] = {}
_ALIASES: dict[str, str] = {}
#: names a caller may pass to measure() that select a group of quantities (not quantities)
MEASURE_GROUPS: dict[str, tuple[str, ...]] = {"NTK_fluct": ("Theta", "Theta_var", "NTK_A", "NTK_B")}


def register(q: Quantity, *, replace: bool = False) -> Quantity:
    """Add a quantity to the registry (see docs/architecture.md, "Adding an observable")."""
    if not isinstance(q, Quantity):
        raise ParameterError("quantity", type(q).__name__, "a deepeft.core.quantities.Quantity")
    taken = q.name in _REGISTRY or q.name in _ALIASES or q.name in MEASURE_GROUPS
    if taken and not (replace and q.name in _REGISTRY):
        raise ParameterError("quantity.name", q.name, "a name not already registered (or replace=True)")
    if q.theory_form not in ("same", "diag"):
        raise ParameterError("quantity.theory_form", q.theory_form, "'same' or 'diag'")
    if q.z_policy not in ("standard", "none"):
        raise ParameterError("quantity.z_policy", q.z_policy, "'standard' or 'none'")
    if q.estimator not in (None, "kernel", "ntk", "ntk_fluct", "derived"):
        raise ParameterError("quantity.estimator", q.estimator, "None, 'kernel', 'ntk', 'ntk_fluct' or 'derived'")
    if (q.estimator == "derived") != (q.derive is not None):
        raise ParameterError("quantity.derive", q.derive, "a function exactly when estimator = 'derived'")
    for n in q.needs:
        if n not in _REGISTRY or (q.estimator == "derived" and not _REGISTRY[n].measured):
            raise ParameterError("quantity.needs", n, "registered quantities (measured ones for a derived quantity)")
    for a in q.aliases:
        if a in _REGISTRY or _ALIASES.get(a, q.name) != q.name:
            raise ParameterError("quantity.aliases", a, "names not used by another quantity")
    _REGISTRY[q.name] = q
    for a in q.aliases:
        _ALIASES[a] = q.name
    return q


def unregister(name: str) -> None:
    """Remove a quantity registered with :func:`register` (and its aliases)."""
    q = _REGISTRY.pop(name, None)
    if q is not None:
        for a in q.aliases:
            _ALIASES.pop(a, None)


def names(*, measured: bool | None = None) -> tuple[str, ...]:
    """Registered names in registry order, optionally only the measured (or theory-only) ones."""
    return tuple(q.name for q in _REGISTRY.values() if measured is None or q.measured == measured)


def aliases() -> dict[str, str]:
    """Old name → registered name."""
    return dict(_ALIASES)


def canonical(name: str, *, warn: bool = True, stacklevel: int = 3) -> str:
    """The registered name for ``name`` (itself, or the name an old alias stands for; a
    DeprecationWarning is emitted for aliases).  Unknown names are returned unchanged."""
    if name in _REGISTRY or name not in _ALIASES:
        return name
    new = _ALIASES[name]
    if warn:
        warnings.warn(f"quantity name {name!r} is deprecated; use {new!r}", DeprecationWarning, stacklevel=stacklevel)
    return new


def get(name: str) -> Quantity:
    """The record of ``name`` (aliases accepted); ParameterError naming the known ones otherwise."""
    n = canonical(name, stacklevel=4)
    if n not in _REGISTRY:
        raise ParameterError("quantity", name, "one of: " + ", ".join(_REGISTRY))
    return _REGISTRY[n]


def is_registered(name: str) -> bool:
    return name in _REGISTRY or name in _ALIASES


# ----------------------------------------------------------------------------------------------
# theory value of a quantity, in the measured shape
# ----------------------------------------------------------------------------------------------
def theory_value(values: Mapping[str, np.ndarray], name: str) -> np.ndarray | None:
    """The theory's prediction of ``name`` from :func:`~deepeft.theory.predict` outputs
    ``values`` (an Observables' ``values``), shaped as the measurement; None if not predicted."""
    q = get(name)
    a = None
    if callable(q.theory):
        a = q.theory(values)
    elif q.theory is not None:
        for k in (q.theory, *q.theory_fallbacks):
            if k in values:
                a = values[k]
                break
    elif q.derive is not None and all(n in values or theory_value(values, n) is not None for n in q.needs):
        a = q.derive({n: (values[n] if n in values else theory_value(values, n)) for n in q.needs})
    if a is None:
        return None
    a = np.asarray(a, dtype=np.float64)
    if q.theory_form == "diag":  # (L, N) diagonal → (L, N, N), other entries not predicted
        out = np.full(a.shape + (a.shape[-1],), np.nan)
        idx = np.arange(a.shape[-1])
        out[..., idx, idx] = a
        return out
    return a


# ----------------------------------------------------------------------------------------------
# the one z-score rule
# ----------------------------------------------------------------------------------------------
STATISTICAL, EXACT, MISMATCH, UNDEFINED = 0, 1, 2, 3
STATUS_NAMES = {STATISTICAL: "z", EXACT: "exact", MISMATCH: "mismatch", UNDEFINED: "undefined"}
#: relative tolerance of the exact-or-not comparison of deterministic entries (float64)
EXACT_RTOL = 1e-9


def exact_rtol(dtype: Any = None) -> float:
    """Tolerance for deterministic entries measured in ``dtype`` (name or numpy/torch dtype):
    1e-9, or 64 machine epsilons of a coarser dtype (float32: 7.6e-6)."""
    if dtype is None:
        return EXACT_RTOL
    try:
        eps = float(np.finfo(np.dtype(str(dtype).replace("torch.", ""))).eps)
    except TypeError:
        return EXACT_RTOL
    return max(EXACT_RTOL, 64.0 * eps)


@dataclass
class ZScores:
    """z = (measured − theory)/SE with its per-entry ``status`` (STATISTICAL, EXACT, MISMATCH,
    UNDEFINED; see :func:`zscore`)."""

    z: np.ndarray
    status: np.ndarray
    scale: float
    rtol: float


def zscore(theory, measured, stderr, *, rtol: float | None = None, dtype: Any = None,
           scale: float | None = None) -> ZScores:
    """The one z-score rule (module docstring).  Arrays broadcast elementwise; ``scale`` defaults
    to max |theory| (else max |measured|, else 1); ``rtol`` defaults to :func:`exact_rtol` of
    ``dtype``.  Entries with non-finite theory, measurement or SE are UNDEFINED (z = NaN)."""
    t, m, s = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (theory, measured, stderr)))
    rtol = exact_rtol(dtype) if rtol is None else float(rtol)
    if scale is None:
        scale = 0.0
        for a in (t, m):
            fin = np.abs(a[np.isfinite(a)])
            if fin.size and fin.max() > 0:
                scale = float(fin.max())
                break
    scale = float(scale) if scale and math.isfinite(scale) and scale > 0 else 1.0
    tol = rtol * scale
    diff = m - t
    defined = np.isfinite(t) & np.isfinite(m) & np.isfinite(s)
    exact = defined & (np.abs(s) <= tol)
    status = np.full(t.shape, UNDEFINED, dtype=np.int8)
    status[defined & ~exact] = STATISTICAL
    status[exact & (np.abs(diff) <= tol)] = EXACT
    status[exact & (np.abs(diff) > tol)] = MISMATCH
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(status == STATISTICAL, diff / np.where(status == STATISTICAL, s, 1.0), np.nan)
    z[status == EXACT] = 0.0
    return ZScores(z=z, status=status, scale=scale, rtol=rtol)


def breakdown_layer(zs: ZScores, threshold: float, mask: np.ndarray | None = None) -> int | None:
    """First layer ℓ (1-based; arrays are layer-first) where some entry has |z| > threshold or a
    deterministic entry disagrees; None if none.  From there on (larger ℓ/n) the 1/n prediction is
    not trusted, even where heavy tails inflate the SE enough to hide the gap (pdlt §11)."""
    st, z = zs.status, zs.z
    bad = (st == MISMATCH) | ((st == STATISTICAL) & (np.abs(np.where(st == STATISTICAL, z, 0.0)) > threshold))
    if mask is not None:
        bad = bad & mask
    per_layer = bad.reshape(bad.shape[0], -1).any(axis=1) if bad.ndim else np.array([bool(bad)])
    hit = np.flatnonzero(per_layer)
    return int(hit[0]) + 1 if hit.size else None


# ----------------------------------------------------------------------------------------------
# the built-in quantities
# ----------------------------------------------------------------------------------------------
def _v_pairs(values: Mapping[str, np.ndarray]) -> np.ndarray | None:
    V = values.get("V")
    return None if V is None else np.einsum("laabb->lab", np.asarray(V, dtype=np.float64))


def _kurtosis(values: Mapping[str, np.ndarray]) -> np.ndarray | None:
    vn = values.get("V_norm")
    return None if vn is None else 3.0 * np.asarray(vn, dtype=np.float64)  # E[z⁴]/E[z²]² − 3 = 3V/(nK²) + O(1/n²)


_BUILTIN = (
    Quantity("kernel", "(L, N, N)", "E[z_{i;α} z_{i;β}]: theory K + K1/n_{ℓ-1} (order '1/n') or K",
             r"$\mathbb{E}[z_{i;0}^2]$ (kernel)", "kernel  E[z z]", theory="kernel", estimator="kernel",
             estimate="conditional Ĝ per network (Rao–Blackwellised Σ_i z_i z_i/n) on plain layers, "
                      "Σ_i z_i z_i/n on residual ones; jackknife over network batches",
             normalisation="O(1); K1 enters as K1/n_{ℓ-1}"),
    Quantity("K", "(L, N, N)", "infinite-width kernel K^(ℓ)", r"$K^{(\ell)}_{00}$", "K", theory="K"),
    Quantity("K1", "(L, N, N)", "1/n kernel correction K1^(ℓ) (only its diagonal for N > 8 inputs)",
             r"$K_1^{(\ell)}{}_{00}$", "K1", theory="K1", normalisation="× 1/n_{ℓ-1} in the kernel"),
    Quantity("V", "(L, N, N, N, N)", "four-point vertex V^(ℓ)_{(α1α2)(α3α4)} (connected 4-pt × n_{ℓ-1})",
             r"$V^{(\ell)}_{(00)(00)}$", "V", theory="V", estimator="kernel",
             estimate="n_{ℓ-1} Cov(Ĝ_{α1α2}, Ĝ_{α3α4}) over networks (plain layers), cross-neuron U-statistic "
                      "(residual layers); N ≤ 8 inputs",
             normalisation="connected 4-pt function × n_{ℓ-1}"),
    Quantity("V_diag", "(L, N)", "diagonal vertex V^(ℓ)_{(αα)(αα)}", r"$V^{(\ell)}_{(00)(00)}$", "V_(aa)(aa)",
             theory="V_diag", normalisation="connected 4-pt function × n_{ℓ-1}"),
    Quantity("V_pairs", "(L, N, N)", "vertex V_{(αα)(ββ)}", r"$V^{(\ell)}_{(00)(11)}$", "V_(αα)(ββ)",
             theory=_v_pairs, estimator="kernel", estimate="as V, for the (αα)(ββ) entries only",
             normalisation="connected 4-pt function × n_{ℓ-1}"),
    Quantity("V_norm", "(L, N)", "V_{(αα)(αα)}/(n_{ℓ-1} K_αα²) = excess kurtosis/3 at O(1/n)", r"$V/(n K^2)$",
             "V / (n K²)", theory="V_norm", estimator="kernel", estimate="V_(αα)(αα)/(n_{ℓ-1} k_αα²) from the "
             "estimates of V and the kernel", normalisation="dimensionless, O(ℓ/n)"),
    Quantity("kurtosis", "(L, N)", "excess kurtosis E[z⁴]/E[z²]² − 3 of one neuron (theory: 3 V/(nK²))",
             r"excess kurtosis", "excess kurtosis", theory=_kurtosis, estimator="kernel",
             estimate="E[z⁴]/E[z²]² − 3 (conditional E[z⁴|Ĝ] = 3Ĝ² on plain layers)",
             normalisation="dimensionless, O(ℓ/n)"),
    Quantity("Theta", "(L, N, N)", "NTK mean E[Ĥ_{ii;αβ}]: theory Θ with Θ + Θ1/n_{ℓ-1} on the diagonal "
             "(order '1/n', key 'ntk_mean'), else the infinite-width Θ (predict's key 'Theta')",
             r"$\Theta^{(\ell)}_{00}$", "NTK mean  Θ", theory="ntk_mean", theory_fallbacks=("Theta",),
             estimator="ntk", estimate="mean over networks and neurons of the diagonal Ĥ_{ii;αβ} (forward "
             "equation or autograd Jacobians)", normalisation="O(1) with 'ntk' learning-rate tensors"),
    Quantity("ntk_mean", "(L, N, N)", "theory: Θ with the 1/n-corrected diagonal Θ + Θ1/n_{ℓ-1} (the theory "
             "key of 'Theta')", r"$\Theta + \Theta_1/n$", "Θ + Θ1/n", theory="ntk_mean"),
    Quantity("Theta1", "(L, N)", "1/n NTK mean correction: E[Ĥ_ii] = Θ + Θ1/n_{ℓ-1}", r"$\Theta_1^{(\ell)}$",
             "Theta1", theory="Theta1", normalisation="× 1/n_{ℓ-1}"),
    Quantity("Theta_var", "(L, N, N)", "NTK variance Var(Ĥ_{ii;αβ}); theory (A + 2B)/n_{ℓ-1} for α = β only",
             r"Var$(\hat H_{ii;00})$", "Var Ĥ_ii", theory="Theta_var", theory_form="diag", estimator="ntk_fluct",
             estimate="variance over networks of Ĥ_{ii;αβ}, averaged over neurons i", aliases=("ntk_var",),
             normalisation="O(1/n)"),
    Quantity("NTK_A", "(L, N, N)", "A = n_{ℓ-1} Cov(Ĥ_ii, Ĥ_jj), i ≠ j (pdlt §8); theory for α = β only",
             r"$A^{(\ell)}$", "NTK A", theory="NTK_A", theory_form="diag", estimator="ntk_fluct",
             estimate="cross-neuron covariance of the diagonal NTK × n_{ℓ-1}", aliases=("A",),
             normalisation="× 1/n_{ℓ-1} in Var(Ĥ)"),
    Quantity("NTK_B", "(L, N, N)", "B = n_{ℓ-1} E[Ĥ_ij²], i ≠ j (pdlt §8); theory for α = β only",
             r"$B^{(\ell)}$", "NTK B", theory="NTK_B", theory_form="diag", estimator="ntk_fluct",
             estimate="mean square of the off-diagonal NTK × n_{ℓ-1}", aliases=("B",),
             normalisation="× 1/n_{ℓ-1} in Var(Ĥ)"),
    Quantity("NTK_D", "(L, N)", "D: NTK–preactivation cross-correlation (pdlt §8)", r"$D^{(\ell)}$", "NTK D",
             theory="NTK_D", aliases=("D",), normalisation="× 1/n_{ℓ-1}"),
    Quantity("NTK_F", "(L, N)", "F: NTK–preactivation cross-correlation (pdlt §8)", r"$F^{(\ell)}$", "NTK F",
             theory="NTK_F", aliases=("F",), normalisation="× 1/n_{ℓ-1}"),
    Quantity("chi_par", "(L, N)", "parallel susceptibility χ_∥ at K_αα", r"$\chi_\parallel$", "chi_par",
             theory="chi_par"),
    Quantity("chi_perp", "(L, N)", "perpendicular susceptibility χ_⊥", r"$\chi_\perp$", "chi_perp",
             theory="chi_perp"),
)
for _q in _BUILTIN:
    register(_q)
del _q


def label(name: str, *, math: bool = True) -> str:
    """Axis label (mathtext) or plain-text label of a quantity; unknown names label themselves."""
    n = canonical(name, warn=False)
    q = _REGISTRY.get(n)
    return name if q is None else (q.label if math else q.text)


def doc_table() -> str:
    """The registry as a text table (name, shape, meaning)."""
    rows = [(q.name, q.shape, q.meaning + ("  (theory only)" if q.theory_only else "")) for q in _REGISTRY.values()]
    w0, w1 = max(len(r[0]) for r in rows), max(len(r[1]) for r in rows)
    return "\n".join(f"{a:<{w0}}  {b:<{w1}}  {c}" for a, b, c in rows)


__all__ = ["Quantity", "register", "unregister", "get", "names", "aliases", "canonical", "is_registered",
           "theory_value", "zscore", "ZScores", "breakdown_layer", "exact_rtol", "label", "doc_table",
           "STATISTICAL", "EXACT", "MISMATCH", "UNDEFINED", "STATUS_NAMES", "EXACT_RTOL", "MEASURE_GROUPS"]
