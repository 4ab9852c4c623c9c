"""``deepeft check``: theory and Monte-Carlo ensemble side by side for one configuration."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ..core.errors import ParameterError
from .common import add_network_args, inputs_from_args, spec_from_args

from ..ensemble.compare import DEFAULT_COMPARE as COMPARED


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "check", help="measure an ensemble of real networks and compare with the theory, layer by layer",
        description="Run the effective theory and a Monte-Carlo ensemble for one network and print, per layer, "
                    "theory, measurement ± standard error and z-score for K, V/(nK²) and Θ.  Layers where the "
                    "measurement departs by more than --z-threshold σ are flagged: there the 1/n theory is not "
                    "trustworthy (a result, not an error).")
    add_network_args(p, depth_default=6, width_default=64)
    e = p.add_argument_group("ensemble")
    e.add_argument("--ensemble", "-M", type=int, default=1000, help="number of sampled networks (>= 2)")
    e.add_argument("--seed", type=int, default=0, help="RNG seed (same seed ⇒ same numbers)")
    e.add_argument("--device", default="cpu", help="cpu or cuda")
    e.add_argument("--dtype", default="float64", choices=("float32", "float64"))
    e.add_argument("--chunk-size", type=int, default=None, help="networks per chunk (default: from available memory)")
    e.add_argument("--no-ntk", action="store_true", help="skip the NTK (faster: no weights are materialised)")
    e.add_argument("--z-threshold", type=float, default=4.0, help="|z| beyond which the 1/n theory is flagged")
    e.add_argument("--scan-widths", default=None,
                   help="comma-separated widths for the multi-width V/(nK²) vs ℓ/n plot (needs --out)")
    o = p.add_argument_group("output")
    o.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    o.add_argument("--out", default=None, help="directory for the plots (PNG) and check.json")
    o.add_argument("--progress", action="store_true", default=None,
                   help="always show a progress bar on stderr (default: when stderr is a terminal)")
    o.add_argument("--no-progress", dest="progress", action="store_false", help="never show a progress bar")
    p.set_defaults(func=run)


def _parse_widths(text: str) -> list[int]:
    try:
        ws = [int(w) for w in text.split(",") if w.strip()]
    except ValueError:
        raise ParameterError("--scan-widths", text, "comma-separated positive integers, e.g. 16,32,64") from None
    if not ws or min(ws) < 1:
        raise ParameterError("--scan-widths", text, "comma-separated positive integers, e.g. 16,32,64")
    return ws


def run(args: argparse.Namespace) -> int:
    from ..ensemble import compare, measure
    from ..theory import predict

    if args.ensemble < 2:
        raise ParameterError("--ensemble", args.ensemble, "an integer >= 2")
    if args.z_threshold <= 0:
        raise ParameterError("--z-threshold", args.z_threshold, "> 0")
    scan = _parse_widths(args.scan_widths) if args.scan_widths else None
    if scan is not None and not args.out:
        raise ParameterError("--scan-widths", args.scan_widths, "together with --out DIR (the width scan is a figure "
                             "written there)")
    spec = spec_from_args(args)
    x = inputs_from_args(args)
    N = x.shape[0]
    quantities = ["kernel", "V_norm", "kurtosis", "histogram"] + ([] if args.no_ntk else ["Theta", "NTK_fluct"])
    th = predict(spec, x)
    ms = measure(spec, x, ensemble=args.ensemble, seed=args.seed, device=args.device, dtype=args.dtype,
                 chunk_size=args.chunk_size, quantities=tuple(quantities), progress="auto" if args.progress is None else args.progress)
    cmp = compare(th, ms, COMPARED, z_threshold=args.z_threshold)

    doc = {
        "spec": spec.to_dict(), "inputs": x.tolist(),
        "theory": th.to_dict(include=("kernel", "V_norm", "Theta", "ntk_mean", "Theta_var", "K", "K1")),
        "measured": ms.to_dict(), "comparison": cmp.to_dict(),
        "trust": {q: ("ok" if bl is None else f"1/n theory departs beyond {args.z_threshold:g} sigma from layer {bl}")
                  for q, bl in cmp.breakdown.items()},
    }
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        doc["figures"] = _figures(out, spec, x, th, ms, cmp, args, scan)
        (out / "check.json").write_text(json.dumps(doc))
    if args.json:
        print(json.dumps(doc))
        return 0
    widths = ",".join(map(str, spec.widths))
    print(f"deepeft check: {spec.activation.name}, L={spec.depth}, widths=[{widths}], C_W={spec.C_W[-1]:g}, "
          f"C_b={spec.C_b[-1]:g}, {N} input(s); ensemble M={ms.meta['ensemble']} ({ms.meta['method']}, "
          f"{ms.meta['dtype']}, {ms.meta['device']}, seed {ms.meta['seed']}) in {ms.meta['seconds']:.2f} s")
    print(cmp.to_text())
    if all(bl is None for bl in cmp.breakdown.values()):
        print(f"# all compared quantities agree with the 1/n theory within {args.z_threshold:g} sigma")
    if args.out:
        print(f"# plots and check.json written to {args.out}", file=sys.stderr)
    return 0


def _figures(out: Path, spec, x, th, ms, cmp, args, scan) -> list[str]:
    from ..ensemble import measure
    from ..report import figures as F
    from ..theory import predict

    files = []
    for q, a in cmp.arrays.items():  # the compared theory (registry theory key), measurement and SE
        first = (slice(None),) + (0,) * (a["theory"].ndim - 1)  # input 0's entry per layer
        t, m, s = a["theory"][first], a["measured"][first], a["stderr"][first]
        f = out / f"{q}_vs_layer.png"
        F.plt.close(F.plot_theory_vs_layer(t, m, s, quantity=q, title=f"{spec.activation.name}: {q} (input 0)",
                                           z_threshold=args.z_threshold, out=f))
        files.append(str(f))
    h = ms.meta.get("histogram")
    if h:
        L = spec.depth
        a = h["input_index"]
        f = out / "histogram_last_layer.png"
        F.plt.close(F.plot_output_histogram(h["edges"], h["density"], float(th["kernel"][L - 1, a, a]),
                                            float(th["V_norm"][L - 1, a]) if "V_norm" in th.values else None,
                                            n_samples=h["n_samples"], title=f"layer {L} outputs, input {a}", out=f))
        files.append(str(f))
    widths = (scan or [spec.widths[0]]) if spec.widths else []
    if widths:
        curves = []
        for w in widths:
            sw = spec.replace(widths=(w,) * len(spec.widths))
            tw = predict(sw, x)
            mw = ms if sw.to_dict() == spec.to_dict() else measure(sw, x, ensemble=args.ensemble, seed=args.seed, device=args.device,
                                               dtype=args.dtype, quantities=("kernel", "V_norm"))
            aspect = np.array([l / sw.fan_in(l) for l in range(1, sw.depth + 1)])
            curves.append({"width": w, "aspect": aspect[1:], "theory": tw["V_norm"][1:, 0],
                           "measured": mw["V_norm"][1:, 0], "stderr": mw.errors["V_norm"][1:, 0]})
        f = out / "vertex_vs_aspect.png"
        F.plt.close(F.plot_vertex_vs_aspect(curves, title=f"{spec.activation.name}: V/(nK²) vs ℓ/n", out=f))
        files.append(str(f))
    return files
