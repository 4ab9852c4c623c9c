"""Pure figure functions (data in → matplotlib Figure, optionally saved): theory vs measurement.

Used by ``deepeft check`` and reusable by the study report.  Matplotlib runs on the Agg backend;
nothing here touches global state beyond creating figures.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ..core import quantities as Q  # noqa: E402



def save(fig: Figure, path: str | Path | None, dpi: int = 120) -> Figure:
    if path is not None:
        import io

        from .files import atomic_write_bytes

        p = Path(path)
        buf = io.BytesIO()
        fig.savefig(buf, dpi=dpi, bbox_inches="tight", format=p.suffix.lstrip(".").lower() or "png")
        atomic_write_bytes(p, buf.getvalue())  # never a half-written figure
    return fig


def plot_theory_vs_layer(theory: Sequence[float], measured: Sequence[float], stderr: Sequence[float], *,
                         quantity: str = "", title: str = "", z_threshold: float = 4.0,
                         out: str | Path | None = None) -> Figure:
    """Theory curve vs layer ℓ with the Monte-Carlo measurement ± 1 SE; points beyond
    ``z_threshold`` σ are drawn hollow and red."""
    th, me, se = (np.asarray(a, dtype=float) for a in (theory, measured, stderr))
    layers = np.arange(1, len(th) + 1)
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    ax.plot(layers, th, "-", color="C0", lw=1.8, label="theory (∞ width + 1/n)")
    zs = Q.zscore(th, me, se)  # the one rule: deterministic layers are compared exactly
    ok = ((zs.status == Q.STATISTICAL) & (np.abs(np.nan_to_num(zs.z)) <= z_threshold)) | (zs.status == Q.EXACT)
    ax.errorbar(layers[ok], me[ok], yerr=se[ok], fmt="o", ms=4, color="k", capsize=2, label="ensemble ± 1 SE")
    if (~ok).any():
        ax.errorbar(layers[~ok], me[~ok], yerr=se[~ok], fmt="o", ms=5, mfc="none", color="C3", capsize=2,
                    label=f"|z| > {z_threshold:g}")
    ax.set_xlabel("layer ℓ")
    ax.set_ylabel(Q.label(quantity, math=False))
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return save(fig, out)


def plot_vertex_vs_aspect(curves: Sequence[dict], *, title: str = "", out: str | Path | None = None) -> Figure:
    """Normalised vertex V/(nK²) vs ℓ/n for several widths.  Each curve: dict with ``width``,
    ``aspect`` (ℓ/n_{ℓ-1}), ``theory``, ``measured``, ``stderr`` (arrays over layers)."""
    fig, ax = plt.subplots(figsize=(5.4, 3.8))
    for i, c in enumerate(curves):
        col = f"C{i % 10}"
        a = np.asarray(c["aspect"], dtype=float)
        ax.plot(a, c["theory"], "-", color=col, lw=1.5)
        ax.errorbar(a, c["measured"], yerr=c["stderr"], fmt="o", ms=3.5, color=col, capsize=2,
                    label=f"n = {c['width']}")
    ax.set_xlabel("ℓ / n")
    ax.set_ylabel("V / (n K²)")
    ax.set_title(title or "normalised vertex: 1/n theory (lines) vs ensembles (points)", fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return save(fig, out)


def edgeworth_density(z: np.ndarray, variance: float, V_norm: float | None = None) -> np.ndarray:
    """Single-neuron output density at O(1/n): Gaussian N(0, variance) times
    [1 + (κ/24) He₄(z/s)], κ = 3 V/(nK²) (the connected 4-pt function; pdlt §4.1)."""
    s = math.sqrt(variance)
    u = np.asarray(z, dtype=float) / s
    phi = np.exp(-u**2 / 2) / (s * math.sqrt(2 * math.pi))
    if V_norm is None:
        return phi
    kappa = 3.0 * V_norm
    return phi * (1 + kappa / 24.0 * (u**4 - 6 * u**2 + 3))


def plot_output_histogram(edges: Sequence[float], density: Sequence[float], variance: float,
                          V_norm: float | None = None, *, n_samples: int | None = None, title: str = "",
                          out: str | Path | None = None) -> Figure:
    """Histogram of last-layer outputs vs the Gaussian and the Gaussian + 1/n (quartic) prediction
    (log scale, so the tails that carry the 1/n effect are visible)."""
    e = np.asarray(edges, dtype=float)
    d = np.asarray(density, dtype=float)
    centres = 0.5 * (e[1:] + e[:-1])
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    ax.step(centres, np.where(d > 0, d, np.nan), where="mid", color="k", lw=1.2,
            label="ensemble" + (f" ({n_samples} samples)" if n_samples else ""))
    zz = np.linspace(e[0], e[-1], 400)
    ax.plot(zz, edgeworth_density(zz, variance), "--", color="C0", label="Gaussian (∞ width)")
    if V_norm is not None:
        ax.plot(zz, np.clip(edgeworth_density(zz, variance, V_norm), 1e-300, None), "-", color="C3",
                label=f"Gaussian + 1/n (V/nK² = {V_norm:.3g})")
    ax.set_yscale("log")
    pos = d[d > 0]
    if pos.size:
        ax.set_ylim(pos.min() / 3, pos.max() * 3)
    ax.set_xlabel("output z")
    ax.set_ylabel("density")
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return save(fig, out)
