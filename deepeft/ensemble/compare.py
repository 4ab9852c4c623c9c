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

from ..core import quantities as Q
from ..core.errors import ParameterError
from ..core.observables import Observables

DEFAULT_COMPARE = ("kernel", "V_norm", "Theta", "Theta_var")


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
    """Rows of (quantity, layer, entry, theory, measured, se, z, status), z and status by the one rule
    of :func:`deepeft.core.quantities.zscore` (status 'z', 'exact' — a deterministic entry equal to the
    theory, z = 0 — or 'mismatch' — a deterministic entry that differs, z = NaN).  ``breakdown[q]``
    is the first layer where some entry has |z| > z_threshold or a mismatch (None if never): from
    there on (larger ℓ/n) the 1/n prediction is flagged as untrustworthy.  ``arrays[q]`` holds the
    full theory, measured, stderr, z and status arrays of each compared quantity."""

    rows: list[dict[str, Any]]
    z_threshold: float
    widths: tuple[int, ...]
    breakdown: dict[str, int | None] = field(default_factory=dict)
    arrays: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)

    def layer_summary(self) -> list[dict[str, Any]]:
        """One row per (quantity, layer): the first entry's values and the worst |z| over entries
        (+inf where a deterministic entry differs from the theory)."""
        out: dict[tuple[str, int], dict[str, Any]] = {}
        for r in self.rows:
            key = (r["quantity"], r["layer"])
            az = math.inf if r["status"] == "mismatch" else abs(r["z"])
            if key not in out:
                out[key] = dict(r, max_abs_z=az, n_entries=1)
            else:
                s = out[key]
                s["n_entries"] += 1
                s["max_abs_z"] = max(s["max_abs_z"], az)
        return list(out.values())

    def max_abs_z(self, quantity: str | None = None) -> float:
        """Largest |z| over the compared entries; +inf if a deterministic entry differs from the
        theory beyond floating-point tolerance; NaN if nothing was compared."""
        zs = [math.inf if r["status"] == "mismatch" else abs(r["z"]) for r in self.rows
              if quantity is None or r["quantity"] == quantity]
        return max(zs) if zs else float("nan")

    def to_text(self) -> str:
        lines = [f"{'quantity':<10} {'l':>3} {'l/n':>6} {'entry':<9} {'theory':>12} {'measured':>12} "
                 f"{'± SE':>10} {'z':>7} {'max|z|':>7}  note"]
        for s in self.layer_summary():
            note = ""
            bl = self.breakdown.get(s["quantity"])
            if s["max_abs_z"] > self.z_threshold:
                note = "beyond 1/n" if bl is not None and s["layer"] >= bl else f"|z|>{self.z_threshold:g}"
            if s["max_abs_z"] == math.inf:
                note = "deterministic entry differs from the theory"
            z = f"{s['z']:>7.2f}" if s["status"] != "mismatch" else f"{'≠':>7}"
            mz = f"{s['max_abs_z']:>7.2f}" if math.isfinite(s["max_abs_z"]) else f"{'≠':>7}"
            lines.append(f"{s['quantity']:<10} {s['layer']:>3} {s['aspect']:>6.3f} {str(s['entry']):<9} "
                         f"{s['theory']:>12.6g} {s['measured']:>12.6g} {s['se']:>10.3g} "
                         f"{z} {mz}  {note}")
        for q, bl in self.breakdown.items():
            if bl is not None:
                lines.append(f"# {q}: measurement departs from the 1/n theory by > {self.z_threshold:g}σ from layer {bl} "
                             f"on (l/n = {bl / self.widths[bl - 1]:.3f}): the truncated 1/n expansion is not trustworthy there")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        def cell(v):
            if isinstance(v, tuple):
                return list(v)
            return None if isinstance(v, float) and not math.isfinite(v) else v  # JSON has no NaN
        return {"z_threshold": self.z_threshold, "breakdown": self.breakdown,
                "rows": [{k: cell(v) for k, v in r.items()} for r in self.rows]}

    def __str__(self) -> str:
        return self.to_text()


def compare(theory: Observables, measured: Observables, quantities: Iterable[str] = DEFAULT_COMPARE, *,
            entries: str = "diag", z_threshold: float = 4.0) -> Comparison:
    """Compare theory and measurement quantity by quantity, layer by layer.

    z = (measured − theory)/SE(measured) by the one rule of :func:`deepeft.core.quantities.zscore`
    (exact-or-not at floating-point tolerance where SE = 0).  entries: 'diag' (α=α entries) or
    'all'.  The theory side of each quantity is its registry record's theory key (e.g. 'Theta' is
    compared with the theory's 1/n-corrected 'ntk_mean'); quantities missing on either side are
    skipped.
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
    arrays: dict[str, dict[str, np.ndarray]] = {}
    for name in quantities:
        q = Q.canonical(name, stacklevel=3)
        if not Q.is_registered(q) or Q.get(q).z_policy == "none":
            continue
        th = Q.theory_value(theory.values, q)
        me, se = measured.values.get(q), measured.errors.get(q)
        if th is None or me is None or se is None or th.shape != np.shape(me):
            continue
        me, se = np.asarray(me, dtype=float), np.asarray(se, dtype=float)
        zs = Q.zscore(th, me, se, dtype=measured.meta.get("dtype"))
        arrays[q] = {"theory": th, "measured": me, "stderr": se, "z": zs.z, "status": zs.status}
        sel = np.zeros(th.shape, dtype=bool)
        for l in range(spec.depth):
            for ix in _entries(th.shape[1:], entries):
                sel[(l, *ix)] = True
                st = int(zs.status[(l, *ix)])
                if st == Q.UNDEFINED:
                    continue
                rows.append({"quantity": q, "layer": l + 1, "aspect": (l + 1) / widths[l], "entry": ix,
                             "theory": float(th[(l, *ix)]), "measured": float(me[(l, *ix)]),
                             "se": float(se[(l, *ix)]), "z": float(zs.z[(l, *ix)]), "status": Q.STATUS_NAMES[st]})
        breakdown[q] = Q.breakdown_layer(zs, z_threshold, sel)
    return Comparison(rows=rows, z_threshold=z_threshold, widths=widths, breakdown=breakdown, arrays=arrays)
