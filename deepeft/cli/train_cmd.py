"""``deepeft train-check`` and ``deepeft train-lr-equivalence``: trained ensembles vs the frozen-NTK theory."""
from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path

import numpy as np

from ..core.errors import ParameterError
from .common import _default, add_network_args, emit_json, spec_from_args


def _data_args(p: argparse.ArgumentParser) -> None:
    d = p.add_argument_group("data (deepeft.datasets; inputs on the sphere |x|² = n_0)")
    d.add_argument("--dataset", default="sine_sphere",
                   help="teacher | random_features | sine_sphere | digits (needs scikit-learn)")
    d.add_argument("--n-train", type=int, default=8, help="training inputs N_A")
    d.add_argument("--n-test", type=int, default=4, help="test inputs N_D")
    d.add_argument("--data-seed", type=int, default=0)
    d.add_argument("--noise", type=float, default=0.0, help="label-noise variance")


def _train_args(p: argparse.ArgumentParser, *, steps: int = 500) -> None:
    t = p.add_argument_group("training (summed loss ½Σ(z−y)², Δθ = −η·λ·∂L/∂θ)")
    t.add_argument("--algorithm", choices=("gd", "flow", "sgd", "adam"), default="gd")
    t.add_argument("--lr", default="auto", help="learning rate η, or 'auto' = --lr-fraction × 2/λ_max(Θ̃)")
    t.add_argument("--lr-fraction", type=float, default=0.5)
    t.add_argument("--steps", type=int, default=steps, help="GD/SGD/Adam steps")
    t.add_argument("--time", type=float, default=None, help="gradient-flow time τ (default: steps × η)")
    t.add_argument("--tol", type=float, default=None, help="stop each network when its training loss ≤ tol")
    t.add_argument("--batch-size", type=int, default=None, help="SGD minibatch size")
    e = p.add_argument_group("ensemble")
    e.add_argument("--ensemble", "-M", type=int, default=512)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--device", default="cpu")
    e.add_argument("--dtype", default="float64", choices=("float32", "float64"))
    e.add_argument("--chunk-size", type=int, default=None)
    o = p.add_argument_group("output")
    o.add_argument("--json", action="store_true", help="print one JSON document instead of the tables")
    o.add_argument("--out", default=None, help="directory for the plots (PNG) and the JSON document")
    o.add_argument("--progress", action="store_true")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train-check", help="train an ensemble and compare it with the infinite-width (frozen-NTK) prediction",
        description="Train M networks together and print, per test input, the frozen-NTK prediction of the mean "
                    "and variance over initialisations vs the measured ensemble (mean ± SE, variance ± SE, z), and "
                    "the training-loss curve vs the predicted curve.  --scan-widths adds where the infinite-width "
                    "prediction stops holding: n·(m̂ − m_∞) and ‖ΔΘ‖/‖Θ‖ across widths.")
    add_network_args(p, depth_default=3, width_default=256)
    _data_args(p)
    _train_args(p)
    p.add_argument("--z-threshold", type=float, default=4.0)
    p.add_argument("--scan-widths", default=None, help="comma-separated widths for the width scan, e.g. 32,64,128")
    p.set_defaults(func=run_check)

    q = subparsers.add_parser(
        "train-lr-equivalence", help="learning-rate equivalence principle: prescribed per-layer rates vs one global rate",
        description="Train critical ensembles at several depths with (a) the per-layer learning rates prescribed for "
                    "the activation's universality class and (b) one global rate (same λ at every layer), one η per "
                    "scheme for all depths, and report loss curves, test MSE and its spread over instantiations.")
    q.add_argument("--activation", "-a", default="relu")
    q.add_argument("--depths", default="2,4,8")
    q.add_argument("--width", "-n", type=int, default=128)
    q.add_argument("--input-dim", type=int, default=8)
    _data_args(q)
    _train_args(q, steps=200)
    q.set_defaults(func=run_equivalence)


def _dataset(args, input_dim: int, output_dim: int):
    from ..datasets import load_dataset
    return load_dataset(args.dataset, args.n_train, args.n_test, input_dim=input_dim, output_dim=output_dim,
                        seed=args.data_seed, noise=args.noise)


def _lr(args, bound: float | None) -> float | None:
    if args.algorithm == "flow":
        return None
    if str(args.lr).lower() == "auto":
        if args.algorithm == "adam":
            return 1e-3
        if not 0 < args.lr_fraction:
            raise ParameterError("--lr-fraction", args.lr_fraction, "> 0")
        return args.lr_fraction * bound
    try:
        return float(args.lr)
    except ValueError:
        raise ParameterError("--lr", args.lr, "a number > 0 or 'auto'") from None


def _train_kw(args, lr, bound):
    kw = dict(ensemble=args.ensemble, algorithm=args.algorithm, seed=args.seed, device=args.device, dtype=args.dtype,
              chunk_size=args.chunk_size, tol=args.tol, progress=args.progress)
    if args.algorithm == "flow":
        kw["time_horizon"] = args.time if args.time is not None else args.steps * args.lr_fraction * bound
    else:
        kw.update(lr=lr, steps=args.steps)
    if args.algorithm == "sgd":
        kw["batch_size"] = args.batch_size
    return kw


def _parse_ints(text: str, name: str, minimum: int = 1) -> list[int]:
    try:
        v = [int(w) for w in text.split(",") if w.strip()]
    except ValueError:
        v = []
    if not v or min(v) < minimum:
        raise ParameterError(name, text, f"comma-separated integers >= {minimum}, e.g. 32,64,128")
    return v


def run_check(args: argparse.Namespace) -> int:
    from ..ensemble.training_check import prediction_for, compare_training, width_scan
    from ..ensemble.training import train_ensemble
    from ..theory.training import lr_bound_for

    if args.inputs:
        raise ParameterError("--inputs", args.inputs, "not used by train-check: choose the data with --dataset")
    data = _dataset(args, args.input_dim, args.output_width)
    args._inputs_cache = data.x_train
    spec = spec_from_args(args)
    bound = lr_bound_for(spec, data.x_train)
    lr = _lr(args, bound)
    kw = _train_kw(args, lr, bound)
    scan = _parse_ints(args.scan_widths, "--scan-widths") if args.scan_widths else None
    ntk = scan is not None and spec.output_width == 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trained = train_ensemble(spec, data.x_train, data.y_train, data.x_test, **kw)
    notes = [str(w.message) for w in caught]
    for n in notes:
        print(f"deepeft: warning: {n}", file=sys.stderr)
    doc = {"spec": spec.to_dict(), "dataset": data.name, "lr": lr, "lr_bound": bound, "algorithm": args.algorithm,
           "warnings": notes, "trained": trained.to_dict()}
    cmp = None
    if args.algorithm != "adam":
        pred = prediction_for(trained, y_test=data.y_test)
        cmp = compare_training(pred, trained, args.z_threshold)
        doc["comparison"] = cmp.to_dict()
        doc["prediction"] = pred.to_dict()
    scan_res = None
    if scan:
        skw = {k: v for k, v in kw.items() if k not in ("ensemble", "seed")}
        scan_res = width_scan(spec, data.x_train, data.y_train, data.x_test, scan, ensemble=args.ensemble, ntk=ntk,
                              **skw)
        doc["width_scan"] = scan_res
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        doc["figures"] = _check_figures(out, trained, cmp, scan_res)
        (out / "train_check.json").write_text(json.dumps(doc, default=_default))
    if args.json:
        emit_json(doc)
        return 0
    print(f"deepeft train-check: {spec.activation.name}, L={spec.depth}, widths={list(spec.widths)}, "
          f"{data.name} ({len(data.x_train)} train / {len(data.x_test)} test), {args.algorithm}"
          + (f", η={lr:.4g} (bound 2/λ_max = {bound:.4g})" if lr is not None else "")
          + f", M={trained.M} in {trained.meta['wall_s']:.1f} s")
    if trained.diverged:
        print(f"# {len(trained.diverged)} networks diverged (network: step): "
              + ", ".join(f"{k}: {v}" for k, v in list(trained.diverged.items())[:10]))
    if cmp is not None:
        print(cmp.table())
        if cmp.flagged:
            print(f"# {len(cmp.flagged)} entries beyond {args.z_threshold:g} sigma: the infinite-width prediction "
                  "does not describe this ensemble there")
        else:
            print(f"# every test input agrees with the infinite-width prediction within {args.z_threshold:g} sigma")
        if "test_mse_theory" in cmp.meta:
            mse = np.mean((trained.test_out[trained.alive, -1] - data.y_test[None]) ** 2, axis=(1, 2))
            print(f"# test MSE: theory {cmp.meta['test_mse_theory']:.5g}, measured {mse.mean():.5g} ± "
                  f"{mse.std(ddof=1) / math.sqrt(len(mse)):.2g}")
    else:
        print("# Adam has no frozen-NTK prediction; measured final loss "
              f"{np.nanmean(trained.loss[trained.alive, -1]):.5g}")
    if scan_res:
        print("width scan: n, n·(m̂ − m_∞) per test input (± n·SE)" + (", ‖ΔΘ‖/‖Θ‖ rms, ‖E ΔΘ‖/‖E Θ‖" if ntk else ""))
        for k, n in enumerate(scan_res["widths"]):
            nd = np.asarray(scan_res["n_dev"][k]).ravel()
            se = n * np.asarray(scan_res["se"][k]).ravel()
            extra = (f"   {scan_res['dtheta_rms'][k]:.3g}  {scan_res['dtheta_mean'][k]:.3g}" if ntk else "")
            print(f"  {n:>6}  " + "  ".join(f"{a:+.3f}±{b:.3f}" for a, b in zip(nd[:6], se[:6])) + extra)
        print("# " + scan_res["verdict"])
        if ntk:
            print(f"# slopes: ‖ΔΘ‖/‖Θ‖ per network {scan_res['dtheta_rms_slope']:.2f} (expect −1/2), "
                  f"ensemble-mean change {scan_res['dtheta_mean_slope']:.2f} (expect −1)")
    if args.out:
        print(f"# plots and train_check.json written to {args.out}", file=sys.stderr)
    return 0


def _save(fig, path: Path, files: list) -> None:
    import matplotlib.pyplot as plt
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    files.append(str(path))


def _check_figures(out: Path, trained, cmp, scan) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    if cmp is not None:
        rows = cmp.rows
        fig, ax = plt.subplots(figsize=(6, 4))
        k = np.arange(len(rows))
        ax.errorbar(k, [r["mean"] for r in rows], yerr=[r["se_mean"] for r in rows], fmt="o", label="measured ± SE")
        ax.plot(k, [r["mean_theory"] for r in rows], "k_", ms=18, label="frozen-NTK prediction")
        ax.set_xlabel("test input (× output unit)")
        ax.set_ylabel("mean output over initialisations")
        ax.legend()
        _save(fig, out / "mean_vs_prediction.png", files)
        fig, ax = plt.subplots(figsize=(6, 4))
        L = cmp.loss
        t = np.asarray(L["times"], dtype=float)
        tt = np.where(t > 0, t, np.nan)
        ax.errorbar(tt, L["mean"], yerr=L["se"], fmt="o", ms=3, label="measured ± SE")
        ax.plot(tt, L["theory"], "k-", label="frozen-NTK prediction")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("step" if trained.algorithm != "flow" else "flow time τ")
        ax.set_ylabel("training loss ½Σ(z−y)²")
        ax.legend()
        _save(fig, out / "loss_curve.png", files)
    if scan and scan.get("dtheta_rms"):
        n = np.asarray(scan["widths"], dtype=float)
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.loglog(n, scan["dtheta_rms"], "o-", label="‖ΔΘ‖/‖Θ‖ per network (rms)")
        ax.loglog(n, scan["dtheta_mean"], "s-", label="‖E[ΔΘ]‖/‖E[Θ]‖")
        for y0, lab, p in ((scan["dtheta_mean"][0], "1/n", -1.0), (scan["dtheta_rms"][0], "1/√n", -0.5)):
            ax.loglog(n, y0 * (n / n[0]) ** p, "k--" if p == -1 else "k:", lw=1, label=lab)
        ax.set_xlabel("width n")
        ax.set_ylabel("relative NTK change")
        ax.legend()
        _save(fig, out / "ntk_change_vs_width.png", files)
    return files


def run_equivalence(args: argparse.Namespace) -> int:
    from ..ensemble.training_check import lr_equivalence

    depths = _parse_ints(args.depths, "--depths", 2)
    data = _dataset(args, args.input_dim, 1)
    kw = dict(device=args.device, dtype=args.dtype, chunk_size=args.chunk_size)
    if args.algorithm != "gd":
        raise ParameterError("--algorithm", args.algorithm, "'gd' for the learning-rate equivalence demonstration")
    res = lr_equivalence(args.activation, depths, args.width, data.x_train, data.y_train, data.x_test, data.y_test,
                         lr_fraction=args.lr_fraction, steps=args.steps, ensemble=args.ensemble, seed=args.seed, **kw)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        res["figures"] = _equivalence_figure(out, res)
        (out / "lr_equivalence.json").write_text(json.dumps(res, default=_default))
    if args.json:
        emit_json(res)
        return 0
    print(f"learning-rate equivalence: {args.activation} at criticality, width {args.width}, {data.name}, "
          f"{args.steps} GD steps, M = {args.ensemble}")
    for scheme, s in res["schemes"].items():
        print(f"[{scheme}]  η = {s['lr']:.4g} for every depth")
        print(f"  {'L':>3} {'η/bound':>8} {'Θ̃ (tr/N)':>10} {'loss t=0':>10} {'loss mid':>10} {'loss end':>10} "
              f"{'test MSE':>16} {'spread':>8} {'div':>4}")
        for r in s["rows"]:
            lm = r["loss_mean"] or [float("nan")] * 3
            mid = lm[len(lm) // 2]
            th = r["theta_train"]
            print(f"  {r['depth']:>3} {r['lr_over_bound']:>8.3f} {th if th is not None else float('nan'):>10.4g} "
                  f"{lm[0]:>10.4g} {mid:>10.4g} {lm[-1]:>10.4g} "
                  f"{r['test_mse'] if r['test_mse'] is not None else float('nan'):>9.4g}±{r['test_mse_se'] or 0:<6.2g} "
                  f"{r['test_mse_spread'] if r['test_mse_spread'] is not None else float('nan'):>8.4g} {r['n_diverged']:>4}")
    return 0


def _equivalence_figure(out: Path, res) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for ax, (scheme, s) in zip(axes[:2], res["schemes"].items()):
        for r in s["rows"]:
            if r["loss_mean"] is None:
                continue
            t = np.asarray(r["times"], dtype=float)
            ax.loglog(np.where(t > 0, t, np.nan), r["loss_mean"], "o-", ms=2, label=f"L = {r['depth']}")
        ax.set_title(f"{scheme} rates (η = {s['lr']:.3g})")
        ax.set_xlabel("step")
        ax.set_ylabel("training loss (ensemble mean)")
        ax.legend()
    ax = axes[2]
    for scheme, s in res["schemes"].items():
        d = [r["depth"] for r in s["rows"]]
        ax.plot(d, [r["test_mse_spread"] for r in s["rows"]], "o-", label=f"{scheme}: spread (std over networks)")
        ax.plot(d, [r["test_mse"] for r in s["rows"]], "s--", label=f"{scheme}: mean")
    ax.set_xlabel("depth L")
    ax.set_ylabel("test MSE")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    files: list = []
    _save(fig, out / "lr_equivalence.png", files)
    return files
