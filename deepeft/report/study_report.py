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

OBS_LABELS = {
    "kernel": r"$\mathbb{E}[z_{i;0}^2]$ (kernel)", "K": r"$K^{(\ell)}_{00}$", "K1": r"$K_1^{(\ell)}{}_{00}$",
    "V": r"$V^{(\ell)}_{(00)(00)}$", "V_norm": r"$V/(n K^2)$", "Theta": r"$\Theta^{(\ell)}_{00}$",
    "chi_par": r"$\chi_\parallel$", "chi_perp": r"$\chi_\perp$",
}
OBS_ORDER = ("kernel", "K", "K1", "V_norm", "V", "Theta", "chi_par", "chi_perp")
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
        ax.set_ylabel(OBS_LABELS.get(q, q))
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


def phase_boundaries(activations, C_b_max: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from ..theory.criticality import phase_boundary_curve

    out = {}
    for act in activations:
        try:
            r = phase_boundary_curve(act, C_b_max)
        except ImportError:
            return {}
        except Exception:  # noqa: BLE001  (no boundary computable for this activation: drawn without)
            r = None
        if r is not None:
            out[act] = r
    return out


def fig_phase_diagram(df: pd.DataFrame) -> tuple[bytes, str]:
    import matplotlib.pyplot as plt
    acts = list(dict.fromkeys(df["activation"]))
    cb_max = max(0.5, float(np.nanmax(df["C_b"].astype(float))) * 1.3) if len(df) else 0.5
    curves = phase_boundaries(acts, cb_max)
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
        cap += " No boundary in range for: " + ", ".join(missing) + "."
    return _fig_to_png(fig), cap


def fig_z_hist(df: pd.DataFrame, observables) -> tuple[bytes, str] | None:
    import matplotlib.pyplot as plt
    zs = {}
    for q in observables:
        col = f"z/{q}"
        if col in df:
            v = [a.ravel() for a in df[col] if isinstance(a, np.ndarray)]
            if v:
                z = np.concatenate(v)
                z = z[np.isfinite(z)]
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
    ax.set_title("z-scores, all points and entries", fontsize=11)
    fig.tight_layout()
    return _fig_to_png(fig), ("If theory and measurement agree to within the ensemble noise, z ~ N(0, 1). "
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
def z_summary(row, q) -> tuple[float | None, float | None]:
    """(z of the scalar summary at the last layer, max |z| over all entries and layers)."""
    a = row.get(f"z/{q}")
    if not isinstance(a, np.ndarray) or a.size == 0:
        return None, None
    last = scalar_series(a)[-1]
    fin = np.abs(a[np.isfinite(a)]) if np.isfinite(a).any() else np.array([])
    mx = float(fin.max()) if fin.size else (float("inf") if np.isinf(a).any() else None)
    if np.isinf(a).any():
        mx = float("inf")
    return float(last), mx


def _zcell(v) -> str:
    if v is None:
        return "<td>—</td>"
    cls = "bad" if abs(v) > 5 else ("warn" if abs(v) > 3 else "")
    return f'<td class="{cls}">{fmt(v, 3)}</td>'


def points_table(df: pd.DataFrame, observables) -> str:
    qs = [q for q in observables if f"z/{q}" in df]
    head = ["#", "status", "activation", "width", "depth", "init", "C_b", "C_W", "param.", "residual", "M", "seed",
            "time (s)"]
    head += [f"z {q} (ℓ=L)" for q in qs] + [f"max|z| {q}" for q in qs]
    rows = []
    for _, r in df.sort_values("idx").iterrows():
        cells = [fmt(r["idx"]), html.escape(str(r["status"])), html.escape(str(r["activation"])), fmt(r["width"]),
                 fmt(r["depth"]), html.escape(str(r["init"])), fmt(r["C_b"]), fmt(r["C_W"]),
                 html.escape(str(r["parameterization"])), fmt(r["residual"]) if r["residual"] else "—",
                 fmt(r["ensemble"]), fmt(r["seed"]), fmt(r["compute_s"], 3)]
        tds = "".join(f"<td>{c}</td>" for c in cells)
        zl, zm = zip(*[z_summary(r, q) for q in qs]) if qs else ((), ())
        tds += "".join(_zcell(v) for v in zl) + "".join(_zcell(v) for v in zm)
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
    observables = [q for q in OBS_ORDER if q in run_opts.get("observables", OBS_ORDER)]
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
            (fig_dir / f"{name}.png").write_bytes(png)
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
yellow: |z| &gt; 3, red: |z| &gt; 5.</p>
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
    html_path.write_text(page, encoding="utf-8")
    return html_path
