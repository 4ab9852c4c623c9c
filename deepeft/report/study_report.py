"""The HTML report of a study: one self-contained page (figures embedded as base64 PNG, and also
written as PNG files next to it).

Sections: theory vs measurement per observable (with standard errors, vs layer), the normalised
vertex V/(n K²) against ℓ/n for every width (the collapse the 1/n theory predicts and where it
breaks), the order-to-chaos phase diagram (χ_⊥ = 1 in the (C_b, C_W) plane) with the study's
points, the distribution of z-scores, last-layer output histograms against the Gaussian and the
Gaussian + 1/n density (``deepeft.report.figures``), and a table of points with their z-scores.

Scalar summaries use input α = 0: ``kernel``/``K``/``K1``/``Theta`` entry [l, 0, 0], ``V``
[l, 0, 0, 0, 0], ``V_norm``/``chi_*`` [l, 0].
"""
from __future__ import annotations

import base64
import html
import io
import math
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..core import quantities as Q

MAX_PANELS = 12


# -- small helpers ---------------------------------------------------------------------------------
def scalar_series(a) -> np.ndarray | None:
    """Per-layer scalar of an (L, …) array: the all-zero-index entry of each layer."""
    if not isinstance(a, np.ndarray) or a.ndim < 1:
        return None
    return a[(slice(None),) + (0,) * (a.ndim - 1)].astype(np.float64)


def fmt(v, digits: int = 4) -> str:
    """Number → text, never 'nan'."""
    if v is None:
        return "—"
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(fmt(u, digits) for u in v) + "]"
    if isinstance(v, str):
        return html.escape(v)
    try:
        f = float(v)
    except (TypeError, ValueError):
        return html.escape(str(v))
    if math.isnan(f):
        return "—"
    if math.isinf(f):
        return "+∞" if f > 0 else "−∞"
    if float(f).is_integer() and abs(f) < 1e6:
        return str(int(f))
    return f"{f:.{digits}g}"


def family_label(row) -> str:
    init = "critical" if row["init"] == "critical" else f"C_b={fmt(row['C_b'])}, C_W={fmt(row['C_W'])}"
    s = f"{row['activation']}, {init}"
    if row.get("parameterization", "ntk") != "ntk":
        s += f", {row['parameterization']}"
    if row.get("residual") and float(row["residual"]) > 0:
        s += f", residual γ={fmt(row['residual'])} ξ={fmt(row['residual_xi'])}"
    return s


def hidden_width(w) -> int:
    return int(w) if not isinstance(w, (tuple, list)) else int(min(w))


def _fig_to_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)  # layouts are tightened before; no 2nd draw
    import matplotlib.pyplot as plt
    plt.close(fig)
    return buf.getvalue()


def _grid(n: int, width: float = 4.2, height: float = 3.2):
    import matplotlib.pyplot as plt
    ncol = min(3, max(1, n))
    nrow = int(math.ceil(n / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(width * ncol, height * nrow), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _width_colors(widths):
    import matplotlib.pyplot as plt
    cmap = plt.get_cmap("viridis")
    ws = sorted(set(widths))
    return {w: cmap(0.85 * i / max(1, len(ws) - 1)) for i, w in enumerate(ws)}


# -- figures ---------------------------------------------------------------------------------------
def _clip_offscale(ax, th_top: float, me_top: float, limits: tuple[float, float] | None = None) -> None:
    """Measurements far beyond the 1/n regime would squash the theory curve: clip the axis (to
    ``limits``, default −0.15…2.5 × the theory's largest value) and say so on the panel."""
    if limits is None:
        if not (th_top > 0 and me_top > 4 * th_top):
            return
        limits = (-0.15 * th_top, 2.5 * th_top)
    elif me_top <= limits[1]:
        return
    ax.set_ylim(*limits)
    ax.text(0.02, 0.97, "points beyond the axis: off-scale\n(1/n theory broken there)", transform=ax.transAxes,
            fontsize=7, va="top", color="0.35")


def fig_theory_vs_measured(df: pd.DataFrame, q: str) -> tuple[bytes, str] | None:
    """Per family (activation × init × parameterisation × residual): theory line and measured
    points with 1σ error bars vs layer, one colour per width (deepest network, first seed)."""
    tcol, mcol, ecol = f"theory/{q}", f"measured/{q}", f"stderr/{q}"
    if mcol not in df or tcol not in df:
        return None
    d = df[df[mcol].map(lambda a: isinstance(a, np.ndarray)) & df[tcol].map(lambda a: isinstance(a, np.ndarray))]
    if d.empty:
        return None
    d = d.assign(family=d.apply(family_label, axis=1), hw=d["width"].map(hidden_width))
    fams = list(dict.fromkeys(d["family"]))
    note = ""
    if len(fams) > MAX_PANELS:
        note = f" Showing {MAX_PANELS} of {len(fams)} families."
        fams = fams[:MAX_PANELS]
    fig, axes = _grid(len(fams))
    colors = _width_colors(d["hw"])
    for ax, fam in zip(axes, fams):
        g = d[d["family"] == fam]
        th_top, me_top = 0.0, 0.0
        for w, gw in g.groupby("hw"):
            row = gw.sort_values(["depth", "seed"], ascending=[False, True]).iloc[0]
            th, me = scalar_series(row[tcol]), scalar_series(row[mcol])
            er = scalar_series(row[ecol]) if isinstance(row.get(ecol), np.ndarray) else np.zeros_like(me)
            ell = np.arange(1, len(th) + 1)
            ok = np.isfinite(me) & np.isfinite(er)
            ax.plot(ell, np.where(np.isfinite(th), th, np.nan), "-", color=colors[w], lw=1.4)
            ax.errorbar(ell[ok], me[ok], yerr=er[ok], fmt="o", ms=3.5, color=colors[w], capsize=2,
                        label=f"n={w} (M={row['ensemble']})")
            if np.isfinite(th).any():
                th_top = max(th_top, float(np.nanmax(np.abs(th))))
            if ok.any():
                me_top = max(me_top, float(np.max(np.abs(me[ok]) + er[ok])))
        _clip_offscale(ax, th_top, me_top)
        ax.set_title(fam, fontsize=9)
        ax.set_xlabel(r"layer $\ell$")
        ax.set_ylabel(Q.label(q))
        ax.legend(fontsize=7)
    fig.suptitle(f"{q}: theory (lines) vs ensemble (points, ±1 s.e.)", fontsize=11)
    fig.tight_layout()
    return _fig_to_png(fig), ("Lines: effective-theory prediction; points: ensemble mean with one standard "
                              "error, for the deepest network of each width (first seed)." + note)


def fig_vertex_collapse(df: pd.DataFrame) -> tuple[bytes, str] | None:
    """V/(n K²) vs ℓ/n for every width (layers ℓ ≥ 2, n = hidden width), per family; the lower row
    shows (measured − theory)/theory to show where the 1/n collapse breaks."""
    mcol, tcol, ecol = "measured/V_norm", "theory/V_norm", "stderr/V_norm"
    if mcol not in df:
        return None
    d = df[df[mcol].map(lambda a: isinstance(a, np.ndarray))]
    if d.empty:
        return None
    d = d.assign(family=d.apply(family_label, axis=1), hw=d["width"].map(hidden_width))
    fams = list(dict.fromkeys(d["family"]))
    note = ""
    if len(fams) > 6:
        note = f" Showing 6 of {len(fams)} families."
        fams = fams[:6]
    import matplotlib.pyplot as plt
    ncol = len(fams)
    fig, axes = plt.subplots(2, ncol, figsize=(4.4 * ncol, 6.2), squeeze=False,
                             gridspec_kw={"height_ratios": [2.2, 1]}, sharex="col")
    colors = _width_colors(d["hw"])
    for j, fam in enumerate(fams):
        ax, axr = axes[0, j], axes[1, j]
        g = d[d["family"] == fam]
        th_top, me_top, rel_top = 0.0, 0.0, 0.0
        for w, gw in g.groupby("hw"):
            xs, ys, es, ts = [], [], [], []
            for _, row in gw.iterrows():
                me = scalar_series(row[mcol])
                er = scalar_series(row[ecol]) if isinstance(row.get(ecol), np.ndarray) else np.zeros_like(me)
                th = scalar_series(row[tcol]) if isinstance(row.get(tcol), np.ndarray) else np.full_like(me, np.nan)
                ell = np.arange(1, len(me) + 1)
                sel = ell >= 2
                xs.append(ell[sel] / w), ys.append(me[sel]), es.append(er[sel]), ts.append(th[sel])
            x, y, e, t = (np.concatenate(v) for v in (xs, ys, es, ts))
            ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(e)
            ax.errorbar(x[ok], y[ok], yerr=e[ok], fmt="o", ms=3, color=colors[w], capsize=1.5, alpha=0.85,
                        label=f"n={w}")
            if ok.any():
                me_top = max(me_top, float(np.max(np.abs(y[ok]) + e[ok])))
            if np.isfinite(t).any():
                th_top = max(th_top, float(np.nanmax(np.abs(t))))
            okt = np.isfinite(t) & np.isfinite(x)
            order = np.argsort(x[okt])
            ax.plot(x[okt][order], t[okt][order], "-", color=colors[w], lw=1.2, alpha=0.9)
            rel_ok = ok & okt & (np.abs(t) > 1e-12)
            if rel_ok.any():
                rel = (y[rel_ok] - t[rel_ok]) / t[rel_ok]
                rel_e = e[rel_ok] / np.abs(t[rel_ok])
                axr.errorbar(x[rel_ok], rel, yerr=rel_e, fmt="o", ms=3, color=colors[w], capsize=1.5, alpha=0.85)
                rel_top = max(rel_top, float(np.max(np.abs(rel) + rel_e)))
        _clip_offscale(ax, th_top, me_top)
        _clip_offscale(axr, 1.0, rel_top, limits=(-1.0, 2.0))
        axr.axhline(0.0, color="k", lw=0.8)
        ax.set_title(fam, fontsize=9)
        ax.set_ylabel(r"$V/(nK^2)$")
        axr.set_ylabel("(meas − th)/th")
        axr.set_xlabel(r"$\ell/n$")
        ax.legend(fontsize=7)
    fig.suptitle(r"Normalised vertex vs depth-to-width ratio $\ell/n$: the 1/n collapse", fontsize=11)
    fig.tight_layout()
    return _fig_to_png(fig), ("Top: measured V/(nK²) (points, ±1 s.e.) and the 1/n prediction (lines, one per "
                              "width — they coincide when the theory's collapse holds), layers ℓ ≥ 2 of every "
                              "depth and seed. Bottom: relative deviation from theory; it grows with ℓ/n where "
                              "higher orders in ℓ/n matter." + note)


def phase_boundaries(df: pd.DataFrame, C_b_max: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The χ⊥ = 1 curve of each activation as stored with its points (``phase/C_b``, ``phase/C_W``,
    written at point execution), cut at ``C_b_max`` (interpolated there)."""
    if "phase/C_b" not in df or "phase/C_W" not in df:
        return {}
    out = {}
    for act, g in df.groupby("activation", sort=False):
        have = g["phase/C_b"].map(lambda a: isinstance(a, np.ndarray)) & g["phase/C_W"].map(lambda a: isinstance(a, np.ndarray))
        if not have.any():
            continue
        row = g[have].iloc[0]
        cb, cw = np.asarray(row["phase/C_b"], dtype=np.float64), np.asarray(row["phase/C_W"], dtype=np.float64)
        keep = cb <= C_b_max
        if keep.any() and not keep.all():
            cb, cw = np.r_[cb[keep], C_b_max], np.r_[cw[keep], np.interp(C_b_max, cb, cw)]
        if cb.size >= 2:
            out[str(act)] = (cb, cw)
    return out


def fig_phase_diagram(df: pd.DataFrame) -> tuple[bytes, str]:
    import matplotlib.pyplot as plt
    acts = list(dict.fromkeys(df["activation"]))
    cb_max = max(0.5, float(np.nanmax(df["C_b"].astype(float))) * 1.3) if len(df) else 0.5
    curves = phase_boundaries(df, cb_max)
    fig, ax = plt.subplots(figsize=(6.2, 4.6))
    cmap = plt.get_cmap("tab10")
    cw_max = 0.0
    for i, act in enumerate(acts):
        c = cmap(i % 10)
        if act in curves:
            cb, cw = curves[act]
            ax.plot(cb, cw, "-", color=c, lw=1.6, label=f"{act}: χ⊥ = 1")
            cw_max = max(cw_max, float(cw.max()))
        g = df[df["activation"] == act]
        crit = g["init"] == "critical"
        ax.scatter(g.loc[~crit, "C_b"].astype(float), g.loc[~crit, "C_W"].astype(float), color=c, marker="o",
                   s=28, edgecolor="k", lw=0.5, zorder=3, label=f"{act} points")
        if crit.any():
            ax.scatter(g.loc[crit, "C_b"].astype(float), g.loc[crit, "C_W"].astype(float), color=c, marker="*",
                       s=140, edgecolor="k", lw=0.6, zorder=4, label=f"{act} critical")
        cw_max = max(cw_max, float(g["C_W"].astype(float).max()))
    ax.set_xlim(-0.02 * cb_max, cb_max)
    ax.set_ylim(0, cw_max * 1.2 + 0.1)
    ax.set_xlabel(r"$C_b$")
    ax.set_ylabel(r"$C_W$")
    ax.text(0.02, 0.97, "chaotic (χ⊥ > 1) above each curve\nordered (χ⊥ < 1) below", transform=ax.transAxes,
            va="top", fontsize=8, color="0.3")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("Order-to-chaos phase diagram with the study's points", fontsize=11)
    fig.tight_layout()
    missing = [a for a in acts if a not in curves]
    cap = ("Curves: χ⊥(K*) = C_W⟨σ'²⟩_{K*} = 1 at the fixed point K* = C_b + C_W⟨σ²⟩_{K*}. "
           "Stars: critical initialisation; circles: other points.")
    if missing:
        cap += " No boundary stored or in range for: " + ", ".join(missing) + "."
    return _fig_to_png(fig), cap


def fig_z_hist(df: pd.DataFrame, observables) -> tuple[bytes, str] | None:
    import matplotlib.pyplot as plt
    zs = {}
    for q in observables:
        if f"z/{q}" in df:
            v = [statistical_z(r, q) for _, r in df.iterrows()]
            v = [a for a in v if a is not None]
            if v:
                z = np.concatenate(v)
                if z.size:
                    zs[q] = z
    if not zs:
        return None
    fig, ax = plt.subplots(figsize=(6.2, 3.8))
    lim = 6.0
    bins = np.linspace(-lim, lim, 49)
    for q, z in zs.items():
        ax.hist(np.clip(z, -lim, lim), bins=bins, density=True, histtype="step", lw=1.5, label=f"{q} ({z.size})")
    xx = np.linspace(-lim, lim, 200)
    ax.plot(xx, np.exp(-xx**2 / 2) / np.sqrt(2 * np.pi), "k--", lw=1, label="N(0, 1)")
    ax.set_xlabel("z = (measured − theory) / s.e.  (clipped to ±6)")
    ax.set_ylabel("density")
    ax.legend(fontsize=7)
    ax.set_title("z-scores, all points and entries with a standard error", fontsize=11)
    fig.tight_layout()
    return _fig_to_png(fig), ("Entries with a standard error only: deterministic ones (e.g. the first layer) are "
                              "compared exactly and listed in the Points table. "
                              "If theory and measurement agree to within the ensemble noise, z ~ N(0, 1). "
                              "Heavy tails come from points where the neglected O(1/n²) terms exceed the "
                              "ensemble error (deep, narrow networks).")


def figs_output_histograms(df: pd.DataFrame, max_figs: int = 6,
                           target_ratio: float = 0.25) -> tuple[list[bytes], str] | None:
    """Last-layer output histograms (log density) against the Gaussian and the Gaussian + 1/n
    prediction, for the network of each family whose L/n is closest to ``target_ratio`` (non-Gaussian
    enough to see, small enough for the 1/n density to apply)."""
    if "hist/density" not in df:
        return None
    from .figures import plot_output_histogram

    d = df[df["hist/density"].map(lambda a: isinstance(a, np.ndarray))]
    if d.empty:
        return None
    d = d.assign(family=d.apply(family_label, axis=1),
                 dist=(d["depth"] / d["width"].map(hidden_width) - target_ratio).abs())
    pngs = []
    for fam in list(dict.fromkeys(d["family"]))[:max_figs]:
        row = d[d["family"] == fam].sort_values(["dist", "seed"]).iloc[0]
        layer, alpha, n_samples = (int(v) for v in row["hist/info"])
        kern = row.get("theory/kernel")
        if not isinstance(kern, np.ndarray) or not np.isfinite(kern[layer - 1, alpha, alpha]):
            continue
        vn = row.get("theory/V_norm")
        vn = float(vn[layer - 1, alpha]) if isinstance(vn, np.ndarray) and np.isfinite(vn[layer - 1, alpha]) else None
        fig = plot_output_histogram(row["hist/edges"], row["hist/density"], float(kern[layer - 1, alpha, alpha]),
                                    vn, n_samples=n_samples,
                                    title=f"{fam}\nn={hidden_width(row['width'])}, L={row['depth']}, input {alpha}")
        pngs.append(_fig_to_png(fig))
    if not pngs:
        return None
    return pngs, ("Histogram of the last-layer output over the ensemble (log scale) against the infinite-width "
                  "Gaussian and the Gaussian corrected at O(1/n) by the theory's vertex V/(nK²), for the network "
                  "of each family with depth-to-width ratio L/n closest to 1/4.")


# -- table -----------------------------------------------------------------------------------------
def z_arrays(row, q) -> tuple[np.ndarray, np.ndarray] | None:
    """(z, status) of quantity ``q`` at one stored point, as stored (``z/q``, ``zstatus/q``; the
    rule of :func:`deepeft.core.quantities.zscore`).  Where no ``zstatus`` is stored (stores of
    older versions, synthetic points) the status comes from the stored theory/measured/stderr arrays
    by that same rule, and deterministic entries get its z (0 or flagged) instead of ±∞/1e14."""
    z = row.get(f"z/{q}")
    if not isinstance(z, np.ndarray) or z.size == 0:
        return None
    st = row.get(f"zstatus/{q}")
    if isinstance(st, np.ndarray) and st.shape == z.shape:
        return z, st
    t, m, s = (row.get(f"{g}/{q}") for g in ("theory", "measured", "stderr"))
    if all(isinstance(a, np.ndarray) and a.shape == z.shape for a in (t, m, s)):
        zs = Q.zscore(t, m, s)
        return np.where(zs.status == Q.STATISTICAL, z, zs.z), zs.status
    return z, np.where(np.isnan(z), Q.UNDEFINED, Q.STATISTICAL).astype(np.int8)


def statistical_z(row, q) -> np.ndarray | None:
    """The finite z-scores of the entries of ``q`` that have a standard error (deterministic entries,
    compared exactly, are left out)."""
    r = z_arrays(row, q)
    if r is None:
        return None
    z, st = r
    z = z[(st == Q.STATISTICAL) & np.isfinite(z)]
    return z


def z_summary(row, q) -> tuple[float | None, float | None, int]:
    """(z of the scalar summary at the last layer, max |z| over the entries with a standard error
    and the exactly-agreeing deterministic ones (z = 0), number of deterministic entries that differ
    from the theory)."""
    r = z_arrays(row, q)
    if r is None:
        return None, None, 0
    z, st = r
    last = scalar_series(np.where(st == Q.MISMATCH, np.nan, z))[-1]
    ok = (st == Q.STATISTICAL) | (st == Q.EXACT)
    az = np.abs(z[ok])
    az = az[~np.isnan(az)]
    mx = float(az.max()) if az.size else None
    return float(last), mx, int((st == Q.MISMATCH).sum())


def _zcell(v, mismatches: int = 0) -> str:
    if mismatches:
        return (f'<td class="bad" title="{mismatches} deterministic entries differ from the theory beyond '
                f'floating-point tolerance">{"" if v is None else fmt(v, 3) + " "}≠exact×{mismatches}</td>')
    if v is None:
        return "<td>—</td>"
    cls = "bad" if abs(v) > 5 else ("warn" if abs(v) > 3 else "")
    return f'<td class="{cls}">{fmt(v, 3)}</td>'


def _breakdown_cell(row, q) -> str:
    b = row.get(f"breakdown/{q}")
    if not isinstance(b, np.ndarray) or b.size == 0:
        return "<td>—</td>"
    layer = int(b.ravel()[0])
    return '<td>none</td>' if layer == 0 else f'<td class="warn">ℓ = {layer}</td>'


def points_table(df: pd.DataFrame, observables) -> str:
    qs = [q for q in observables if f"z/{q}" in df]
    head = ["#", "status", "activation", "width", "depth", "init", "C_b", "C_W", "param.", "residual", "M", "seed",
            "time (s)"]
    head += [f"z {q} (ℓ=L)" for q in qs] + [f"max|z| {q}" for q in qs] + [f"1/n breaks {q}" for q in qs]
    rows = []
    for _, r in df.sort_values("idx").iterrows():
        cells = [fmt(r["idx"]), html.escape(str(r["status"])), html.escape(str(r["activation"])), fmt(r["width"]),
                 fmt(r["depth"]), html.escape(str(r["init"])), fmt(r["C_b"]), fmt(r["C_W"]),
                 html.escape(str(r["parameterization"])), fmt(r["residual"]) if r["residual"] else "—",
                 fmt(r["ensemble"]), fmt(r["seed"]), fmt(r["compute_s"], 3)]
        tds = "".join(f"<td>{c}</td>" for c in cells)
        zl, zm, zx = zip(*[z_summary(r, q) for q in qs]) if qs else ((), (), ())
        tds += "".join(_zcell(v) for v in zl) + "".join(_zcell(v, k) for v, k in zip(zm, zx))
        tds += "".join(_breakdown_cell(r, q) for q in qs)
        if r["status"] != "ok":
            msg = html.escape(str(r.get("error") or "").splitlines()[0] if r.get("error") else "")
            tds += f'<td class="bad">{msg}</td>'
        rows.append(f"<tr>{tds}</tr>")
    ths = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    return f'<table class="points"><thead><tr>{ths}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


# -- page ------------------------------------------------------------------------------------------
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1400px;color:#222;padding:0 1em}
h1{font-size:1.6em}h2{font-size:1.25em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee;vertical-align:top;margin:2px}figcaption{font-size:.9em;color:#555}
table.points{border-collapse:collapse;font-size:.82em}table.points td,table.points th{border:1px solid #ddd;padding:2px 6px;text-align:right}
table.points th{background:#f4f4f4;position:sticky;top:0}td.warn{background:#fff3cd}td.bad{background:#f8d7da}
dl.meta{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}dl.meta dt{font-weight:600}
"""


def write_report(path: str | os.PathLike, html_path: str | os.PathLike | None = None) -> Path:
    """Write the study's HTML report; returns the page's path (default ``<output>/report/index.html``,
    figures also written as PNG files in ``report/figures/``)."""
    from ..studies.results import _store_path, load_study
    from ..studies.store import Store
    from .files import atomic_write_bytes, atomic_write_text

    import matplotlib
    matplotlib.use("Agg", force=False)

    t0 = time.perf_counter()
    store_path = _store_path(path)
    with Store(store_path, create=False, readonly=True) as st:
        meta = st.meta()
        out_dir = st.path.parent
    df_all = load_study(store_path)
    df = df_all[df_all["status"] == "ok"].copy() if len(df_all) else df_all
    html_path = Path(html_path) if html_path else out_dir / "report" / "index.html"
    fig_dir = html_path.parent / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)

    import json
    run_opts = json.loads(meta.get("run_options", "{}"))
    asked = [Q.canonical(q, warn=False) for q in run_opts.get("observables", Q.names())]
    observables = [q for q in Q.names() if q in asked]
    present = {c.split("/", 1)[1] for c in df.columns if isinstance(c, str) and c.startswith("measured/")}
    observables = [q for q in observables if q in present] or sorted(present)

    figures: list[tuple[str, str, bytes, str]] = []  # (id, title, png, caption)
    if len(df):
        for q in observables:
            r = fig_theory_vs_measured(df, q)
            if r:
                figures.append((f"obs-{q}", f"Theory vs measurement: {q}", *r))
        r = fig_vertex_collapse(df)
        if r:
            figures.append(("vertex-collapse", "Normalised vertex V/(nK²) vs ℓ/n", *r))
        figures.append(("phase-diagram", "Order-to-chaos phase diagram", *fig_phase_diagram(df)))
        r = fig_z_hist(df, observables)
        if r:
            figures.append(("z-hist", "Distribution of z-scores", *r))
        r = figs_output_histograms(df)
        if r:
            figures.append(("output-hist", "Output distributions at finite width", *r))

    parts = []
    for fid, title, pngs, cap in figures:
        imgs = []
        for i, png in enumerate(pngs if isinstance(pngs, list) else [pngs]):
            name = fid if not isinstance(pngs, list) else f"{fid}-{i + 1}"
            atomic_write_bytes(fig_dir / f"{name}.png", png)
            b64 = base64.b64encode(png).decode()
            imgs.append(f'<img class="figure" alt="{html.escape(title)}" src="data:image/png;base64,{b64}">')
        parts.append(f'<section id="{fid}"><h2>{html.escape(title)}</h2><figure>{"".join(imgs)}'
                     f"<figcaption>{html.escape(cap)}</figcaption></figure></section>")

    from .. import __version__
    n_ok = int((df_all["status"] == "ok").sum()) if len(df_all) else 0
    n_fail = int((df_all["status"] == "failed").sum()) if len(df_all) else 0
    planned = json.loads(meta.get("planned_keys", "[]"))
    stored = set(df_all["key"]) if len(df_all) else set()
    pending = sum(1 for k in planned if k not in stored)
    name = meta.get("study_name", out_dir.name)
    total_compute = float(df_all["compute_s"].fillna(0).sum()) if len(df_all) else 0.0
    info = [("study", name), ("source", meta.get("study_source", "—")), ("points", f"{n_ok} ok, {n_fail} failed, "
            f"{pending} pending"), ("theory order", run_opts.get("order", "—")),
            ("observables", ", ".join(observables) or "—"), ("compute time", f"{fmt(total_compute, 3)} s"),
            ("deepeft", __version__), ("generated", time.strftime("%Y-%m-%d %H:%M:%S"))]
    if len(df):
        info.insert(3, ("inputs", f"N = {fmt(df['n_inputs'].iloc[0])} inputs of dimension {fmt(df['input_dim'].iloc[0])}"))
    dl = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>" for k, v in info)
    empty = "" if len(df) else "<p><strong>No finished points yet.</strong></p>"
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>deepeft study: {html.escape(name)}</title>
<style>{_CSS}</style></head><body>
<h1>deepeft study: {html.escape(name)}</h1>
<dl class="meta">{dl}</dl>{empty}
<p>Conventions: see <code>deepeft.conventions</code>. Scalar curves use input α = 0 (diagonal entries);
z = (measured − theory)/standard error. Layer-ℓ 1/n objects are normalised by n<sub>ℓ−1</sub>.</p>
{''.join(parts)}
<section id="points"><h2>Points</h2>
<p>z at the last layer (scalar summary) and the largest |z| over all entries and layers, per observable;
yellow: |z| &gt; 3, red: |z| &gt; 5. Deterministic entries (zero standard error, e.g. layer 1) are compared
exactly (relative tolerance {Q.EXACT_RTOL:g}): z = 0 when they agree, “≠exact” when they do not.
“1/n breaks”: the first layer where |z| &gt; 4 (stored at point execution, as <code>deepeft check</code> flags it).</p>
{points_table(df_all, observables) if len(df_all) else ''}
</section>
<footer><p style="color:#888;font-size:.8em">Written by deepeft {__version__} in {time.perf_counter() - t0:.1f} s.</p></footer>
<script>
window.addEventListener("load", function () {{
  var imgs = document.querySelectorAll("img.figure"), ok = 0;
  imgs.forEach(function (im) {{ if (im.complete && im.naturalWidth > 0) ok += 1; }});
  document.body.setAttribute("data-figures-total", imgs.length);
  document.body.setAttribute("data-figures-rendered", ok);
}});
</script>
</body></html>
"""
    atomic_write_text(html_path, page)
    return html_path
