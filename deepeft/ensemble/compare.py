"""Theory vs measurement, side by side: per layer, value ± SE and z-score, with trust flags.

A measured quantity that departs from the O(1/n) prediction by more than ``z_threshold`` standard
errors at growing depth marks where the truncated 1/n expansion stops being trustworthy (its
neglected terms are O((ℓ/n)²), pdlt §11).  That is reported as a *result* (``breakdown``), never
raised as an error.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from ..core.errors import ParameterError
from ..core.observables import Observables

DEFAULT_COMPARE = ("kernel", "V_norm", "Theta", "Theta_var")


def _derived(obs: Observables, name: str, errors: bool = False) -> np.ndarray | None:
    src = obs.errors if errors else obs.values
    if obs.source == "theory" and not errors:
        # the theory's best O(1/n) prediction of what an ensemble measures
        if name == "Theta" and "ntk_mean" in src:
            return np.asarray(src["ntk_mean"], dtype=float)
        if name == "Theta_var" and "ntk_var" in src:
            v = np.asarray(src["ntk_var"], dtype=float)
            out = np.full(v.shape + (v.shape[-1],), np.nan)  # only Var(Ĥ_αα) is predicted
            idx = np.arange(v.shape[-1])
            out[:, idx, idx] = v
            return out
    if name in src:
        return np.asarray(src[name], dtype=float)
    if name == "V_pairs" and "V" in src:
        V = np.asarray(src["V"], dtype=float)
        return np.einsum("laabb->lab", V)
    if name == "kurtosis" and "V_norm" in src:
        return 3.0 * np.asarray(src["V_norm"], dtype=float)
    return None


def _entries(shape: tuple[int, ...], mode: str) -> list[tuple[int, ...]]:
    """Entry indices shown per layer: 'diag' (α,α) entries, or 'all' independent entries."""
    if len(shape) == 1:
        return [(a,) for a in range(shape[0])]
    if len(shape) == 2:
        N = shape[0]
        if mode == "diag":
            return [(a, a) for a in range(N)]
        return [(a, b) for a in range(N) for b in range(a, N)]
    if len(shape) == 4:
        N = shape[0]
        if mode == "diag":
            return [(a, a, a, a) for a in range(N)]
        return [(a, b, c, d) for a in range(N) for b in range(a, N) for c in range(N) for d in range(c, N)
                if (a, b) <= (c, d)]
    return [tuple(ix) for ix in np.ndindex(*shape)]


@dataclass
class Comparison:
    """Rows of (quantity, layer, entry, theory, measured, se, z).  ``breakdown[q]`` is the first
    layer where some entry has |z| > z_threshold (None if never): from there on (larger ℓ/n) the
    1/n prediction is flagged as untrustworthy."""

    rows: list[dict[str, Any]]
    z_threshold: float
    widths: tuple[int, ...]
    breakdown: dict[str, int | None] = field(default_factory=dict)

    def layer_summary(self) -> list[dict[str, Any]]:
        """One row per (quantity, layer): the first entry's values and the worst |z| over entries."""
        out: dict[tuple[str, int], dict[str, Any]] = {}
        for r in self.rows:
            key = (r["quantity"], r["layer"])
            if key not in out:
                out[key] = dict(r, max_abs_z=abs(r["z"]) if math.isfinite(r["z"]) else r["z"], n_entries=1)
            else:
                s = out[key]
                s["n_entries"] += 1
                if not math.isfinite(r["z"]) or abs(r["z"]) > s["max_abs_z"]:
                    s["max_abs_z"] = abs(r["z"]) if math.isfinite(r["z"]) else float("inf")
        return list(out.values())

    def max_abs_z(self, quantity: str | None = None) -> float:
        zs = [abs(r["z"]) for r in self.rows if quantity is None or r["quantity"] == quantity]
        return max(zs) if zs else float("nan")

    def to_text(self) -> str:
        lines = [f"{'quantity':<10} {'l':>3} {'l/n':>6} {'entry':<9} {'theory':>12} {'measured':>12} "
                 f"{'± SE':>10} {'z':>7} {'max|z|':>7}  note"]
        for s in self.layer_summary():
            note = ""
            bl = self.breakdown.get(s["quantity"])
            if s["max_abs_z"] > self.z_threshold:
                note = "beyond 1/n" if bl is not None and s["layer"] >= bl else f"|z|>{self.z_threshold:g}"
            z = s["z"]
            lines.append(f"{s['quantity']:<10} {s['layer']:>3} {s['aspect']:>6.3f} {str(s['entry']):<9} "
                         f"{s['theory']:>12.6g} {s['measured']:>12.6g} {s['se']:>10.3g} "
                         f"{z:>7.2f} {s['max_abs_z']:>7.2f}  {note}")
        for q, bl in self.breakdown.items():
            if bl is not None:
                lines.append(f"# {q}: measurement departs from the 1/n theory by > {self.z_threshold:g}σ from layer {bl} "
                             f"on (l/n = {bl / self.widths[bl - 1]:.3f}): the truncated 1/n expansion is not trustworthy there")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"z_threshold": self.z_threshold, "breakdown": self.breakdown,
                "rows": [{k: (list(v) if isinstance(v, tuple) else v) for k, v in r.items()} for r in self.rows]}

    def __str__(self) -> str:
        return self.to_text()


def compare(theory: Observables, measured: Observables, quantities: Iterable[str] = DEFAULT_COMPARE, *,
            entries: str = "diag", z_threshold: float = 4.0) -> Comparison:
    """Compare theory and measurement quantity by quantity, layer by layer.

    z = (measured − theory)/SE(measured).  entries: 'diag' (α=α entries) or 'all'.
    Quantities missing on either side are skipped (V_pairs and kurtosis are derived from the
    theory's V and V_norm when needed).
    """
    if not isinstance(theory, Observables) or not isinstance(measured, Observables):
        raise ParameterError("theory/measured", (type(theory).__name__, type(measured).__name__), "two Observables")
    if theory.depth != measured.depth:
        raise ParameterError("measured", f"depth {measured.depth}", f"the theory's depth {theory.depth}")
    if theory.inputs.shape != measured.inputs.shape or not np.allclose(theory.inputs, measured.inputs):
        raise ParameterError("measured.inputs", f"shape {measured.inputs.shape}", "the same inputs as the theory")
    if entries not in ("diag", "all"):
        raise ParameterError("entries", entries, "'diag' or 'all'")
    spec = measured.spec
    widths = tuple(spec.fan_in(l) for l in range(1, spec.depth + 1))
    rows: list[dict[str, Any]] = []
    breakdown: dict[str, int | None] = {}
    for q in quantities:
        th = _derived(theory, q)
        me = _derived(measured, q)
        se = _derived(measured, q, errors=True)
        if th is None or me is None or se is None or th.shape != me.shape:
            continue
        bad_layers = []
        qscale = float(np.nanmax(np.abs(th))) if np.isfinite(th).any() else 1.0
        qscale = qscale if qscale > 0 else 1.0
        for l in range(1, spec.depth + 1):
            worst = 0.0
            for ix in _entries(th.shape[1:], entries):
                t, m, s = float(th[(l - 1, *ix)]), float(me[(l - 1, *ix)]), float(se[(l - 1, *ix)])
                if not (math.isfinite(m) and math.isfinite(t)):
                    continue
                if s > 1e-10 * qscale and math.isfinite(s):
                    z = (m - t) / s
                else:  # exactly known layer (e.g. layer 1): zero error up to rounding
                    z = 0.0 if abs(m - t) <= 1e-8 * qscale else math.copysign(float("inf"), m - t)
                worst = max(worst, abs(z))
                rows.append({"quantity": q, "layer": l, "aspect": l / widths[l - 1], "entry": ix, "theory": t,
                             "measured": m, "se": s, "z": z})
            bad_layers.append(worst > z_threshold)
        # first layer beyond the threshold: deeper layers (larger ℓ/n) are not trusted either,
        # even where heavy tails inflate the SE enough to hide the gap
        breakdown[q] = next((l for l in range(1, spec.depth + 1) if bad_layers[l - 1]), None)
    return Comparison(rows=rows, z_threshold=z_threshold, widths=widths, breakdown=breakdown)
