"""``deepeft llc`` and ``deepeft bayes {calibrate,wbic,ti,beta-sweep,susceptibility,degrade,llc-sweep,aoyagi,dln-gibbs}``.

File formats (all written with ``torch.save``):

* MODEL.pt — a whole pickled ``nn.Module`` (``torch.save(model, "model.pt")``); it is loaded with
  ``torch.load(..., weights_only=False)``, which runs pickle: only load files you trust.  The
  module's class must be importable when the CLI runs.
* DATA.pt  — a dict ``{"x": inputs, "y": targets}`` (or ``"inputs"/"targets"``), a tuple/list
  ``(x, y)``, a single tensor ``x`` or a ``TensorDataset``; first dimension = samples.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys

from ..core.errors import ParameterError

FORMATS = """\
files: MODEL.pt is a whole pickled nn.Module saved with torch.save(model, path) (loaded with
weights_only=False: only load trusted files; its class must be importable). DATA.pt is a dict
{"x": inputs, "y": targets} (or "inputs"/"targets"), a tuple (x, y), a tensor x, or a
TensorDataset, saved with torch.save; the first dimension indexes samples.
losses: mse (torch mse_loss, mean over samples and outputs), gaussian_nll (1/2 sum over outputs
of (y-f)^2 / sigma^2 + const, mean over samples; constants included when --sigma is given),
cross_entropy."""


def _load_model(path: str):
    import torch
    from torch import nn

    if not os.path.exists(path):
        raise ParameterError("MODEL", path, "an existing file saved with torch.save(model, path)")
    try:
        obj = torch.load(path, weights_only=False, map_location="cpu")
    except Exception as exc:  # unpicklable / wrong format
        raise ParameterError("MODEL", path, f"a file saved with torch.save(model, path) (load failed: {exc})") from None
    if not isinstance(obj, nn.Module):
        raise ParameterError("MODEL", f"{path} holds a {type(obj).__name__}",
                             "a whole nn.Module (torch.save(model, path)), not a state_dict")
    return obj


def _load_data(path: str):
    import torch

    if not os.path.exists(path):
        raise ParameterError("--data", path, "an existing file saved with torch.save")
    try:
        obj = torch.load(path, weights_only=False, map_location="cpu")
    except Exception as exc:
        raise ParameterError("--data", path, f"a torch.save file (load failed: {exc})") from None
    if not isinstance(obj, (torch.Tensor, dict, tuple, list, torch.utils.data.TensorDataset)):
        raise ParameterError("--data", f"{path} holds a {type(obj).__name__}",
                             "torch tensors saved as a dict {'x': inputs, 'y': targets} or a tuple (x, y) "
                             "(for numpy arrays: torch.save({'x': torch.as_tensor(x), 'y': torch.as_tensor(y)}, path))")
    return obj


def _writable(path: str) -> str:
    """``--out``: checked when the arguments are parsed, before any sampling."""
    folder = os.path.dirname(os.path.abspath(path))
    ok = (os.access(path, os.W_OK) and not os.path.isdir(path)) if os.path.exists(path) else (
        os.path.isdir(folder) and os.access(folder, os.W_OK))
    if not ok:
        raise argparse.ArgumentTypeError(f"cannot write {path!r} (no such folder, or not writable)")
    return path


def _loss(args):
    if args.loss == "gaussian_nll" and args.sigma is not None:
        s2 = float(args.sigma) ** 2
        if not s2 > 0:
            raise ParameterError("--sigma", args.sigma, "> 0")

        from ..bayes._data import match_target

        def nll(out, y):
            d = (out - match_target(out, y, "gaussian_nll")).reshape(out.shape[0], -1)
            return 0.5 * (d * d).sum(1).mean() / s2 + 0.5 * d.shape[1] * math.log(2 * math.pi * s2)

        return nll
    return args.loss


def _checked(kw: dict) -> dict:
    """The sampler settings checked against the API's one declaration
    (:data:`deepeft.bayes.samplers.SAMPLE_PARAMS`) before any file is loaded or anything runs."""
    from ..bayes.samplers import SAMPLE_PARAMS
    from ..core.validation import PerChain

    for k, v in kw.items():
        c = SAMPLE_PARAMS.get(k)
        if c is not None and v is not None:
            (c.inner if isinstance(c, PerChain) else c).check(k, v)
    return kw


def _sampler_kwargs(args) -> dict:
    kw = dict(localization=args.localization, num_chains=args.chains, num_draws=args.draws,
              num_burnin_steps=_burnin(args), num_steps_bw_draws=args.steps_bw_draws, seed=args.seed,
              device=args.device, sampler=args.sampler, checkpoint=args.checkpoint,
              checkpoint_every=args.checkpoint_every, progress=False if (args.json or args.no_progress) else "auto")
    if args.nbeta is not None:
        kw["nbeta"] = args.nbeta
    if args.batch_size is not None:
        kw["batch_size"] = args.batch_size
    if args.params:
        kw["params"] = args.params
    if args.precondition:
        kw["precondition"] = args.precondition
    return _checked(kw)


def _emit(args, payload: dict, text: str) -> None:
    if args.json:
        print(json.dumps(payload))
    else:
        print(text)
    if getattr(args, "out", None):
        with open(args.out, "w") as fh:
            json.dump(payload, fh, indent=2)


def _common(p: argparse.ArgumentParser, with_lr: bool = True, many_models: bool = False, lr_default: str = "auto") -> None:
    from ..bayes.chains import LLC_DEFAULTS  # the measured defaults (docs/bayes.md "Defaults")

    p.add_argument("model", metavar="MODEL.pt", nargs="+" if many_models else None,
                   help="whole pickled nn.Module (torch.save(model, path))" + (", one or more" if many_models else ""))
    p.add_argument("--data", required=True, metavar="DATA.pt", help="dict {'x','y'} / tuple (x, y) / tensor, torch.save'd")
    p.add_argument("--loss", default="mse", choices=["mse", "gaussian_nll", "cross_entropy"])
    p.add_argument("--sigma", type=float, default=None, help="noise std for gaussian_nll (adds the NLL constants)")
    if with_lr:
        p.add_argument("--lr", default=lr_default, help=f"SGLD step size ε, or 'auto' to calibrate from pilot runs (default {lr_default})")
    p.add_argument("--localization", type=float, default=LLC_DEFAULTS["localization"],
                   help=f"γ (default {LLC_DEFAULTS['localization']:g})")
    p.add_argument("--nbeta", type=float, default=None, help="nβ (default n/log n)")
    p.add_argument("--chains", type=int, default=LLC_DEFAULTS["num_chains"])
    p.add_argument("--draws", type=int, default=LLC_DEFAULTS["num_draws"])
    p.add_argument("--burnin", default="auto", help="burn-in steps, or 'auto' (default): 3/(lr·γ), at most 10× the draws' span")
    p.add_argument("--checkpoint", default=None, metavar="FILE",
                   help="save the sampler state here (every --checkpoint-every steps, on Ctrl-C, at the end); rerun to resume")
    p.add_argument("--checkpoint-every", type=int, default=1000)
    p.add_argument("--steps-bw-draws", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=None, help="default min(n, 512)")
    p.add_argument("--params", nargs="+", default=None, help="sample only these parameters (names / glob patterns)")
    p.add_argument("--precondition", choices=["rmsprop"], default=None)
    p.add_argument("--sampler", choices=["sgld", "mala", "gibbs"], default="sgld",
                   help="gibbs: exact blocked Gibbs sweeps, deep linear networks only (bias-free Linear layers)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--out", default=None, type=_writable, help="also write the JSON result to this file")
    p.add_argument("--no-progress", action="store_true")


def _pilot_kwargs(args) -> dict:
    """Sampler keyword arguments for routines that choose chains, draws and burn-in themselves
    (calibrate, degrade)."""
    kw = _sampler_kwargs(args)
    for k in ("num_chains", "num_draws", "num_burnin_steps", "num_steps_bw_draws", "progress", "sampler",
              "checkpoint", "checkpoint_every"):
        kw.pop(k, None)
    return kw


def _burnin(args) -> int | str:
    from ..bayes.samplers import SAMPLE_PARAMS
    from ..core.validation import parse_text

    return parse_text(SAMPLE_PARAMS["num_burnin_steps"], "--burnin", args.burnin, int, name="num_burnin_steps")


def _lr_or_auto(args) -> float | None:
    """``--lr``: a positive number, or None for 'auto' (the routine chooses)."""
    from ..core.validation import AnyOf, Choices, parse_text
    from ..bayes.samplers import SAMPLE_PARAMS

    lr = parse_text(AnyOf((Choices(("auto",)), SAMPLE_PARAMS["lr"].inner), "a positive number or 'auto'"), "--lr", args.lr,
                    name="lr")
    return None if lr == "auto" else lr


def _temperature_kwargs(args, keep_localization: bool = False) -> tuple[dict, float | None]:
    """Sampler keyword arguments for the commands that set nβ themselves (and, for WBIC / TI, sample the
    prior-weighted posterior without localisation), and ``--lr`` (None for 'auto': the routine calibrates)."""
    kw = _sampler_kwargs(args)
    kw.pop("nbeta", None)
    if not keep_localization:
        kw.pop("localization")
    return kw, _lr_or_auto(args)


# ------------------------------------------------------------------------------------ commands
def cmd_llc(args) -> int:
    from ..bayes import estimate_llc, plot_loss_trace

    model, data, loss = _load_model(args.model), _load_data(args.data), _loss(args)
    lr = _lr_or_auto(args)
    kw = _sampler_kwargs(args)
    if args.mala_every:
        kw["mala_every"] = _checked({"mala_every": args.mala_every})["mala_every"]
    # --lr auto: estimate_llc calibrates; the table and its warnings are in the diagnostics (also in --json)
    res = estimate_llc(model, data, loss, lr="auto" if lr is None else lr, extrapolate_lr=args.extrapolate_lr, **kw)
    payload = res.to_dict(traces=args.traces)
    if args.plot:
        payload["plot"] = plot_loss_trace(res.samples, args.plot, title=f"LLC {res.llc_mean:.3g} ± {res.llc_se:.2g}")
    _emit(args, payload, res.summary() + (f"\n  plot: {args.plot}" if args.plot else ""))
    return 0


def cmd_llc_sweep(args) -> int:
    from ..bayes.sweep import plot_llc_sweep
    from ..studies.llc_sweep import llc_sweep
    from ..core.jsonutil import to_jsonable

    if args.sigma is not None:
        raise ParameterError("--sigma", args.sigma, "not given to llc-sweep (built-in loss names only)")
    lr = _lr_or_auto(args)
    if lr is None:
        raise ParameterError("--lr", args.lr, "a number for llc-sweep (calibrate once with `deepeft bayes calibrate`)")
    kw = _sampler_kwargs(args)
    for k in ("progress", "checkpoint", "checkpoint_every"):
        kw.pop(k, None)
    df = llc_sweep(args.model, args.data, args.loss, out=args.out_dir, labels=args.labels, workers=args.workers,
                   scheduler=args.scheduler, progress=False if (args.json or args.no_progress) else "auto", lr=lr, **kw)
    payload = {"out_dir": args.out_dir, "models": to_jsonable(df.drop(columns=["key"]).to_dict(orient="records"))}
    if args.plot:
        plot_llc_sweep(df, args.plot)
        payload["plot"] = args.plot
    cols = ["label", "llc_mean", "llc_se", "rhat", "status"]
    _emit(args, payload, df[cols].to_string(index=False) + f"\n  store: {args.out_dir}"
          + (f"\n  plot: {args.plot}" if args.plot else ""))
    return 0 if (df["status"] == "ok").all() else 1


def cmd_calibrate(args) -> int:
    from ..bayes import calibrate

    model, data, loss = _load_model(args.model), _load_data(args.data), _loss(args)
    cal = calibrate(model, data, loss, num_steps=args.pilot_steps, **_pilot_kwargs(args))
    _emit(args, cal.to_dict(), cal.summary())
    return 0


def cmd_wbic(args) -> int:
    from ..bayes import wbic

    model, data, loss = _load_model(args.model), _load_data(args.data), _loss(args)
    kw, lr = _temperature_kwargs(args)
    res = wbic(model, data, loss, prior_precision=args.prior_precision, lr=lr, **kw)
    _emit(args, res.to_dict(), f"WBIC = {res.value:.6g} ± {res.se:.2g}")
    return 0


def cmd_ti(args) -> int:
    from ..bayes import thermodynamic_integration

    model, data, loss = _load_model(args.model), _load_data(args.data), _loss(args)
    kw, lr = _temperature_kwargs(args)
    chains = kw.pop("num_chains")
    res = thermodynamic_integration(model, data, loss, prior_precision=args.prior_precision, lr=lr,
                                    n_betas=args.n_betas, chains_per_temperature=chains, **kw)
    _emit(args, res.to_dict(), f"F_n = {res.value:.6g} ± {res.se:.2g} (MC) ± {res.quadrature_error:.2g} (quadrature)")
    return 0


def cmd_beta_sweep(args) -> int:
    from ..bayes import beta_sweep, plot_beta_sweep

    model, data, loss = _load_model(args.model), _load_data(args.data), _loss(args)
    kw, lr = _temperature_kwargs(args, keep_localization=True)
    chains = kw.pop("num_chains")
    res = beta_sweep(model, data, loss, nbetas=args.nbetas, chains_per_temperature=chains, lr=lr, **kw)
    payload = res.to_dict()
    lines = ["nβ          λ̂(β)              C(β)"]
    for i in range(len(res.nbeta)):
        lines.append(f"{res.nbeta[i]:<10.4g}  {res.llc[i]:8.4g} ± {res.llc_se[i]:<6.2g}  {res.heat_capacity[i]:8.4g} ± {res.heat_capacity_se[i]:.2g}")
    if args.plot:
        payload["plot"] = plot_beta_sweep(res, args.plot)
        lines.append(f"plot: {args.plot}")
    _emit(args, payload, "\n".join(lines))
    return 0


def cmd_susceptibility(args) -> int:
    from ..bayes import susceptibilities

    model, data, loss = _load_model(args.model), _load_data(args.data), _loss(args)
    probe = _load_data(args.probe) if args.probe else None
    kw = _sampler_kwargs(args)
    res = susceptibilities(model, data, loss, probe=probe, lr=float(args.lr), **kw)
    lines = [f"susceptibilities χ_k = Cov(per-sample loss_k, nβ L_n) on {len(res.chi)} probe samples (nβ = {res.nbeta:.4g})"]
    for k in range(min(len(res.chi), 20)):
        lines.append(f"  {k:4d}: {res.chi[k]: .4g} ± {res.chi_se[k]:.2g}")
    _emit(args, res.to_dict(), "\n".join(lines))
    return 0


def cmd_degrade(args) -> int:
    import torch

    from ..bayes import degrade

    model, data, loss = _load_model(args.model), _load_data(args.data), _loss(args)
    kw = _pilot_kwargs(args)
    kw.pop("nbeta", None)
    res = degrade(model, data, loss, target_delta_loss=args.target_delta_loss, nbeta=args.nbeta,
                  num_models=args.num_models, lr=_lr_or_auto(args),
                  num_steps=args.steps, **kw)
    os.makedirs(args.out_dir, exist_ok=True)
    paths = []
    for i, m in enumerate(res.models):
        p = os.path.join(args.out_dir, f"degraded_{i}.pt")
        torch.save(m, p)
        paths.append(p)
    payload = res.to_dict()
    payload["paths"] = paths
    _emit(args, payload, f"nβ = {res.nbeta:.4g}, lr = {res.lr:.3g}; Δloss per model = {[round(float(d), 6) for d in res.delta_loss]}; "
                         f"saved {len(paths)} models under {args.out_dir}")
    return 0


def cmd_aoyagi(args) -> int:
    from ..bayes import aoyagi_dln, dln_num_params

    lam, m = aoyagi_dln(args.widths, args.rank)
    payload = {"widths": args.widths, "rank": args.rank, "lambda": float(lam), "lambda_fraction": str(lam),
               "multiplicity": m, "num_params": dln_num_params(args.widths)}
    _emit(args, payload, f"λ = {lam} = {float(lam):.6g}, m = {m} (d = {dln_num_params(args.widths)} parameters)")
    return 0


def cmd_dln_gibbs(args) -> int:
    from ..bayes import dln_gibbs

    res = dln_gibbs(args.widths, args.nbeta, args.localization, rank=args.rank, num_chains=args.chains,
                    num_sweeps=args.sweeps, seed=args.seed, progress=False if (args.json or args.no_progress) else "auto")
    payload = {"widths": res.widths, "rank": res.rank, "nbeta": res.nbeta, "localization": res.localization,
               "llc_mean": res.llc_mean, "llc_se": res.llc_se, "llc_per_chain": res.llc_per_chain.tolist(),
               "rhat": res.rhat, "ess": res.ess, "aoyagi_lambda": res.aoyagi_lambda,
               "aoyagi_multiplicity": res.aoyagi_multiplicity, "signed_error": res.signed_error, "config": res.config}
    _emit(args, payload, res.summary())
    return 0


# ------------------------------------------------------------------------------------ register
def register(subparsers) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    p = subparsers.add_parser("llc", help="estimate the local learning coefficient of a saved model",
                              description="Estimate λ̂ = nβ(E[L_n] − L_n(w*)) with vectorised SGLD chains.\n\n" + FORMATS,
                              formatter_class=fmt)
    _common(p)
    p.add_argument("--mala-every", type=int, default=0, help="MH acceptance diagnostic every k steps (0: off)")
    p.add_argument("--extrapolate-lr", action="store_true",
                   help="remove SGLD's first-order step-size bias: half the chains at lr, half at lr/2, λ̂ = 2λ̂(lr/2) − λ̂(lr)")
    p.add_argument("--plot", default=None, help="save a loss-trace plot (PNG) here")
    p.add_argument("--traces", action="store_true", help="include the chains × draws loss trace in the JSON")
    p.set_defaults(func=cmd_llc)

    b = subparsers.add_parser("bayes", help="Bayesian thermodynamics: calibrate, wbic, ti, beta-sweep, susceptibility, degrade, llc-sweep, aoyagi, dln-gibbs",
                              description="Bayesian thermodynamics of a saved model.\n\n" + FORMATS, formatter_class=fmt)
    bs = b.add_subparsers(dest="bayes_command", metavar="SUBCOMMAND")

    c = bs.add_parser("calibrate", help="choose the SGLD step size from pilot runs", description=FORMATS, formatter_class=fmt)
    _common(c, with_lr=False)
    c.add_argument("--pilot-steps", type=int, default=1000)
    c.set_defaults(func=cmd_calibrate)

    w = bs.add_parser("wbic", help="WBIC = E[n L_n] at β = 1/log n (prior N(0, I/prior_precision))",
                      description=FORMATS + "\nThe loss must be the NLL with constants (e.g. gaussian_nll with --sigma).",
                      formatter_class=fmt)
    _common(w)
    w.add_argument("--prior-precision", type=float, required=True)
    w.set_defaults(func=cmd_wbic, lr="auto")

    t = bs.add_parser("ti", help="free energy by thermodynamic integration over β",
                      description=FORMATS + "\nThe loss must be the NLL with constants (e.g. gaussian_nll with --sigma).",
                      formatter_class=fmt)
    _common(t)
    t.add_argument("--prior-precision", type=float, required=True)
    t.add_argument("--n-betas", type=int, default=17)
    t.set_defaults(func=cmd_ti, lr="auto")

    s = bs.add_parser("beta-sweep", help="λ̂(β) and heat capacity C(β) curves", description=FORMATS, formatter_class=fmt)
    _common(s)
    s.add_argument("--nbetas", type=float, nargs="+", default=None, help="nβ values (default 9 log-spaced around n/log n)")
    s.add_argument("--plot", default=None, help="save the λ̂(β), C(β) plot (PNG) here")
    s.set_defaults(func=cmd_beta_sweep, lr="auto")

    q = bs.add_parser("susceptibility", help="Cov(per-sample loss, nβ L_n) on a probe set", description=FORMATS, formatter_class=fmt)
    _common(q, lr_default="1e-4")
    q.add_argument("--probe", default=None, metavar="PROBE.pt", help="probe data (same format as DATA.pt); default: training data")
    q.set_defaults(func=cmd_susceptibility)

    d = bs.add_parser("degrade", help="SGLD-degraded copies of the model at a target Δloss or temperature",
                      description=FORMATS, formatter_class=fmt)
    _common(d)
    d.add_argument("--target-delta-loss", type=float, default=None)
    d.add_argument("--num-models", type=int, default=4)
    d.add_argument("--steps", type=int, default=1000)
    d.add_argument("--out-dir", default="deepeft-out/degraded")
    # 'auto': each temperature's step size from the curvature at w*, 0.4/(nβ·h_max + γ)
    d.set_defaults(func=cmd_degrade, lr="auto")

    w = bs.add_parser("llc-sweep", help="λ̂ of many models (e.g. training checkpoints) into the embedded store; "
                                       "reruns resume; --workers/--scheduler run it on Dask",
                      description=FORMATS, formatter_class=fmt)
    _common(w, many_models=True, lr_default="1e-4")
    w.add_argument("--labels", nargs="+", default=None, help="one label per model (default: file names)")
    w.add_argument("--out-dir", default="deepeft-out/llc-sweep", help="sweep folder (study.sqlite, checkpoints)")
    w.add_argument("--workers", type=int, default=None, help="local Dask processes (default: in-process)")
    w.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler")
    w.add_argument("--plot", default=None, metavar="PNG", help="λ̂ ± 2 SE against the models' order")
    w.set_defaults(func=cmd_llc_sweep)

    a = bs.add_parser("aoyagi", help="Aoyagi's RLCT of a deep linear network")
    a.add_argument("widths", type=int, nargs="+", help="H_0 (input) … H_L (output)")
    a.add_argument("--rank", type=int, default=0)
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_aoyagi)

    gb = bs.add_parser("dln-gibbs", help="exact finite-nβ λ̂ of a deep linear network (blocked Gibbs; whitened inputs)")
    gb.add_argument("widths", type=int, nargs="+", help="H_0 (input) … H_L (output)")
    gb.add_argument("--nbeta", type=float, required=True)
    gb.add_argument("--localization", type=float, default=1.0, help="γ (default 1)")
    gb.add_argument("--rank", type=int, default=0, help="true rank r (w* = the rank-r factor point)")
    gb.add_argument("--chains", type=int, default=8)
    gb.add_argument("--sweeps", type=int, default=2000)
    gb.add_argument("--seed", type=int, default=0)
    gb.add_argument("--json", action="store_true")
    gb.add_argument("--no-progress", action="store_true")
    gb.set_defaults(func=cmd_dln_gibbs)

    def _bayes_help(args):
        b.print_help()
        return 2

    b.set_defaults(func=_bayes_help)
