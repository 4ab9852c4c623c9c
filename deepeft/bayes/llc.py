"""The local learning coefficient λ̂(w*) (Lau, Furman, Wang, Murfet, Wei 2023, "The local learning
coefficient: a singularity-aware complexity measure", eq. for the WBIC-style estimator)::

    λ̂(w*) = nβ · (E_p[L_n(w)] − L_n(w*)),   p(w) ∝ exp(−nβ L_n(w) − (γ/2)‖w − w*‖²)

Choices (the three points on which the peer tools disagree):

* **nβ default** = n / log n with n the *dataset* size (β = 1/log n, Watanabe's WBIC temperature),
  not devinterp-1.x's b/log b with b the batch size.
* **Burn-in is excluded**: only draws after ``num_burnin_steps`` enter E_p[L_n] (devinterp 2.x
  averages burn-in in; we do not).  The initial point is never a draw.  The default burn-in
  (``'auto'``) is 3/(ε·γ) steps, three relaxation times of the directions only the localisation
  holds, at most 10× the draws' span (devinterp and canonical default to 0).
* **L_n(w*)** is computed exactly on all in-memory data (chunked), or as the sample-weighted average
  over all batches of a DataLoader (or its first ``init_loss_batches``) — never from one batch
  and identical for every chain.

E_p[L_n] is the average over draws and healthy chains of the minibatch loss recorded at each draw
(unbiased for L_n at that state).  ``llc_std`` is the standard deviation of the per-chain
estimates (ddof=1); ``llc_se`` = nβ·sd(trace)/sqrt(ESS) is the Monte-Carlo standard error of
``llc_mean`` from the pooled trace's effective sample size (falls back to llc_std/√chains).
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

from ..core.errors import AccuracyWarning, ParameterError, check_positive
from ..core.jsonutil import to_jsonable as _jsonable
from .diagnostics import ess, rhat, trace_drift
from .chains import LLC_DEFAULTS
from .samplers import ConvergenceWarning, SampleResult, sample


@dataclass
class LLCResult:
    llc_mean: float
    llc_std: float
    llc_se: float
    llc_per_chain: np.ndarray
    loss_trace: np.ndarray
    init_loss: float
    nbeta: float
    n: int
    diagnostics: dict
    config: dict
    samples: SampleResult | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        """True when no chain diverged and R̂ (if computed) is below 1.1."""
        d = self.diagnostics
        r = d.get("rhat", float("nan"))
        return (not any(d["diverged"])) and (not (isinstance(r, float) and r > 1.1))

    def to_dict(self, traces: bool = False) -> dict:
        out = {
            "llc_mean": self.llc_mean,
            "llc_std": self.llc_std,
            "llc_se": self.llc_se,
            "llc_per_chain": [None if not math.isfinite(v) else float(v) for v in self.llc_per_chain],
            "init_loss": self.init_loss,
            "nbeta": self.nbeta,
            "n": self.n,
            "diagnostics": _jsonable(self.diagnostics),
            "config": _jsonable(self.config),
        }
        if traces:
            out["loss_trace"] = np.where(np.isfinite(self.loss_trace), self.loss_trace, None).tolist()
        return out

    def summary(self) -> str:
        d = self.diagnostics
        lines = [
            f"LLC λ̂ = {self.llc_mean:.4g} ± {self.llc_se:.2g} (MCSE); std over chains {self.llc_std:.3g}",
            f"  nβ = {self.nbeta:.4g} (n = {self.n}), L_n(w*) = {self.init_loss:.6g}, "
            f"{self.loss_trace.shape[0]} chains × {self.loss_trace.shape[1]} draws",
            f"  R̂ = {d.get('rhat', float('nan')):.3f}, ESS = {d.get('ess', float('nan')):.0f}, "
            f"trace drift z = {d.get('drift_z', float('nan')):.2f}"
            + (f", MALA acceptance = {np.nanmean(d['mala_acceptance']):.3f}" if d.get("mala_acceptance") is not None else ""),
        ]
        cal = d.get("calibration")
        if cal:
            lines.append(f"  lr = {cal['lr']:.3g} chosen by calibrate: {cal['reason']}")
        ex = d.get("extrapolation")
        if ex:
            lines.append(f"  step-size extrapolation: λ̂(lr = {ex['lr']:.3g}) = {ex['llc_lr']:.4g} ± {ex['llc_se_lr']:.2g}, "
                         f"λ̂(lr/2) = {ex['llc_half_lr']:.4g} ± {ex['llc_se_half_lr']:.2g}; estimated bias at lr "
                         f"{ex['estimated_bias_at_lr']:+.3g}")
        if any(d["diverged"]):
            lines.append(f"  DIVERGED chains: {[i for i, v in enumerate(d['diverged']) if v]} — {d['divergence_reason']}")
        for w in d.get("warnings", []):
            lines.append(f"  warning: {w}")
        return "\n".join(lines)


def llc_from_samples(res: SampleResult, require_rhat: bool = False) -> LLCResult:
    """Turn a :class:`SampleResult` (uniform nβ) into an :class:`LLCResult` with diagnostics."""
    if isinstance(res.nbeta, np.ndarray):
        raise ParameterError("nbeta", "one value per chain", "a single nβ for an LLC estimate (use beta_sweep for several)")
    nb = float(res.nbeta)
    ok = res.healthy
    trace = res.loss_trace
    per_chain = np.full(trace.shape[0], np.nan)
    per_chain[ok] = nb * (trace[ok].mean(axis=1) - res.init_loss)
    good = trace[ok]
    C, D = good.shape
    if require_rhat and (C < 2 or D < 4):
        if C < 2:
            raise ParameterError("num_chains", C, ">= 2 healthy chains when R-hat is requested")
        raise ParameterError("num_draws", D, ">= 4 when R-hat is requested (split-R̂ halves each chain)")
    diag: dict[str, Any] = {}
    llc_mean = float(np.mean(per_chain[ok]))
    llc_std = float(np.std(per_chain[ok], ddof=1)) if C >= 2 else float("nan")
    if D >= 4:
        e = ess(good)
        diag["ess"] = e
        se = nb * float(good.std(ddof=1)) / math.sqrt(e)
        diag["drift_z"] = trace_drift(good) if D >= 8 else float("nan")
    else:
        diag["ess"] = float("nan")
        diag["drift_z"] = float("nan")
        se = llc_std / math.sqrt(C) if C >= 2 else float("nan")
    if C >= 2 and D >= 4:
        diag["rhat"] = rhat(good)
    else:
        diag["rhat"] = float("nan")
        diag["rhat_note"] = "needs >= 2 healthy chains and >= 4 draws"
    diag["mala_acceptance"] = None if res.mala_acceptance is None else res.mala_acceptance.tolist()
    diag["diverged"] = res.diverged.tolist()
    diag["divergence_step"] = res.divergence_step.tolist()
    diag["divergence_reason"] = [r for r in res.divergence_reason]
    diag["curvature_at_wstar"] = res.curvature
    diag["mean_sq_distance"] = float(np.nanmean(res.distance_trace[ok]))
    diag["warnings"] = list(res.warnings)
    gamma_ = float(res.localization)
    if gamma_ > 0 and res.layout is not None:
        q = gamma_ * diag["mean_sq_distance"] / res.layout.P
        diag["localization_share"] = q
        if q > LOCALIZATION_SHARE_WARN:
            diag["warnings"].append(
                f"localization share q = γ·E‖w − w*‖²/P = {q:.2f}: the chains spread about as far as the localisation "
                f"γ = {gamma_:.3g} alone allows, so λ̂ is set by γ, not by the loss (it can be far below the learning "
                f"coefficient: e.g. 0.6 instead of 8 on a [5,4,5] deep linear network at γ = 100); lower localization "
                f"(the default is {LLC_DEFAULTS['localization']:g}) or raise nbeta")
    if isinstance(diag["rhat"], float) and diag["rhat"] > 1.1:
        k = res.num_steps_bw_draws
        msg = (f"R-hat = {diag['rhat']:.3f} > 1.1 (ESS = {diag['ess']:.0f} of {C}×{D} draws): the chains disagree — each one "
               f"moves too little between draws; raise num_steps_bw_draws (CLI --steps-bw-draws) from {k} to {5 * k} "
               f"or num_draws (measured: R̂ 1.41 → 1.05 at ×5 on the docs/bayes.md example), or lengthen the burn-in")
        diag["warnings"].append(msg)
    if math.isfinite(se) and llc_mean < -4 * se:
        diag["warnings"].append(
            f"λ̂ = {llc_mean:.4g} ± {se:.2g} < 0: the chains found lower loss than L_n(w*), so w* is not a local minimum "
            "of L_n (λ̂ is defined at minima: train further, or check the initial loss and the data)")
    if abs(diag.get("drift_z", 0.0) or 0.0) > 4:
        diag["warnings"].append(f"loss trace not flat (drift z = {diag['drift_z']:.1f}): increase num_burnin_steps")
    # The localisation alone pulls w back to w* at rate εγ/2 per step (an Ornstein–Uhlenbeck process):
    # directions the loss does not constrain relax over ~1/(εγ) steps.  Near a degenerate w* these
    # soft directions decide how stiff the others are, so a burn-in shorter than that relaxation
    # time leaves λ̂ biased even when the loss trace looks flat (docs/bayes.md, DLN [10]*6).  Warned
    # when the part of that transient the burn-in does not cover exceeds 10 % of the draws' span.
    gamma = float(res.localization)
    if gamma > 0 and res.sampler != "gibbs":  # Gibbs sweeps redraw every direction exactly: no relaxation time
        lr_min = float(np.min(res.lr))
        relax = 1.0 / (lr_min * gamma)
        diag["localization_relaxation_steps"] = relax
        span = max(1, (trace.shape[1] - 1) * res.num_steps_bw_draws)
        if res.num_burnin_steps < relax and relax - res.num_burnin_steps > 0.1 * span:
            diag["warnings"].append(
                f"num_burnin_steps = {res.num_burnin_steps} is shorter than the localisation relaxation time "
                f"1/(lr·localization) = {relax:.3g} steps: directions the loss leaves free have not relaxed and λ̂ can be "
                f"biased; lengthen the burn-in, raise lr or raise localization")
    dist = res.distance_trace[ok]
    if dist.shape[0] >= 1 and dist.shape[1] >= 8:
        dz = trace_drift(dist)
        diag["distance_drift_z"] = dz
        if dz > 4:
            diag["warnings"].append(f"‖w − w*‖² still growing over the draws (drift z = {dz:.1f}): the chains have not "
                                    "equilibrated in the directions the loss leaves free; lengthen the burn-in")
    cfg = dict(res.config)
    cfg["wall_time_s"] = res.wall_time
    return LLCResult(llc_mean=llc_mean, llc_std=llc_std, llc_se=float(se), llc_per_chain=per_chain,
                     loss_trace=trace, init_loss=res.init_loss, nbeta=nb, n=res.n, diagnostics=diag,
                     config=cfg, samples=res)


def _chain_subset(res: SampleResult, idx: np.ndarray) -> SampleResult:
    """The same run restricted to chains ``idx`` (every per-chain field sliced)."""
    sub = dataclasses.replace(res)
    for name in ("loss_trace", "step_loss", "distance_trace", "lr", "diverged", "divergence_step", "mala_acceptance",
                 "pair_loss_trace", "observables", "param_draws", "final_flat"):
        v = getattr(res, name)
        if v is not None:
            setattr(sub, name, v[idx] if not isinstance(v, list) else [v[i] for i in idx])
    sub.divergence_reason = [res.divergence_reason[i] for i in idx]
    sub.warnings = list(res.warnings)
    return sub


def _richardson(res: SampleResult, require_rhat: bool) -> LLCResult:
    """Step-size extrapolation (Richardson–Romberg; Durmus, Şimşekli, Moulines, Badeau, Richard 2016,
    "Stochastic gradient Richardson-Romberg Markov chain Monte Carlo", NeurIPS): SGLD's bias in E[L_n] is
    linear in ε to first order (discretisation and minibatch noise alike), so with half the chains at ε
    and half at ε/2, λ̂ = 2 λ̂(ε/2) − λ̂(ε) removes it; SE² = 4 SE(ε/2)² + SE(ε)²."""
    C = res.num_chains
    full = llc_from_samples(_chain_subset(res, np.arange(C // 2)), require_rhat)
    half = llc_from_samples(_chain_subset(res, np.arange(C // 2, C)), require_rhat)
    lam = 2.0 * half.llc_mean - full.llc_mean
    se = math.sqrt(4.0 * half.llc_se ** 2 + full.llc_se ** 2)
    per = np.concatenate([full.llc_per_chain, half.llc_per_chain])
    dg, dh = full.diagnostics, half.diagnostics
    diag = dict(dh)
    diag["extrapolation"] = {
        "method": "Richardson-Romberg in the step size (2·λ̂(lr/2) − λ̂(lr))",
        "lr": float(res.lr[0]), "llc_lr": full.llc_mean, "llc_se_lr": full.llc_se,
        "llc_half_lr": half.llc_mean, "llc_se_half_lr": half.llc_se,
        "estimated_bias_at_lr": 2.0 * (full.llc_mean - half.llc_mean),
    }
    for k in ("rhat", "drift_z", "distance_drift_z"):  # worst of the two groups (they target different E)
        vals = [v for v in (dg.get(k), dh.get(k)) if isinstance(v, float) and math.isfinite(v)]
        if vals:
            diag[k] = max(vals, key=abs)
    diag["ess"] = float(np.nansum([dg.get("ess", np.nan), dh.get("ess", np.nan)]))
    diag["diverged"] = list(dg["diverged"]) + list(dh["diverged"])
    diag["divergence_step"] = list(dg["divergence_step"]) + list(dh["divergence_step"])
    diag["divergence_reason"] = list(dg["divergence_reason"]) + list(dh["divergence_reason"])
    diag["mala_acceptance"] = None if res.mala_acceptance is None else res.mala_acceptance.tolist()
    diag["warnings"] = list(dict.fromkeys(dg["warnings"] + dh["warnings"]))
    cfg = dict(full.config)
    cfg["extrapolate_lr"] = True
    return LLCResult(llc_mean=float(lam), llc_std=float(np.nanstd(per, ddof=1)), llc_se=float(se), llc_per_chain=per,
                     loss_trace=res.loss_trace, init_loss=res.init_loss, nbeta=full.nbeta, n=full.n, diagnostics=diag,
                     config=cfg, samples=res)


#: warn when the chains' mean squared distance from w* reaches this fraction of the localisation
#: Gaussian's own (P/γ): the loss barely constrains them and λ̂ measures γ
LOCALIZATION_SHARE_WARN = 0.9
#: keywords of estimate_llc that the step-size calibration also needs
_CALIBRATION_KEYS = ("nbeta", "localization", "batch_size", "n", "params", "center", "precondition", "seed",
                     "device", "chunk_size", "init_loss_batches")


def estimate_llc(model: nn.Module, data: Any, loss_fn: Any = "mse", *, require_rhat: bool = False,
                 extrapolate_lr: bool = False, lr: Any = "auto", **sample_kwargs) -> LLCResult:
    """Estimate the local learning coefficient λ̂ at the model's current weights w*.

    ``model``: any ``nn.Module``; ``data``: tensors ``(x, y)``, a dict, a TensorDataset or a
    DataLoader (see :mod:`deepeft.bayes._data`); ``loss_fn``: ``'mse'``, ``'gaussian_nll'``,
    ``'cross_entropy'`` or ``f(output, target) -> scalar mean loss``.  All keyword arguments of
    :func:`deepeft.bayes.samplers.sample` are accepted (``lr``, ``localization``, ``nbeta``,
    ``num_chains``, ``num_draws``, ``num_burnin_steps``, ``num_steps_bw_draws``, ``batch_size``,
    ``params`` for a weight-restricted LLC, ``precondition='rmsprop'``, ``sampler='mala'``,
    ``mala_every``, ``seed``, ``device``, ``progress`` …).

    Returns an :class:`LLCResult` with ``llc_mean``, ``llc_std`` (over chains), ``llc_se``
    (Monte-Carlo standard error), ``llc_per_chain``, the chains × draws ``loss_trace`` and
    ``diagnostics`` (R̂, ESS, drift, MALA acceptance, divergence flags and reasons, warnings).
    Diverged chains are stopped, excluded and reported (a :class:`DivergenceWarning` is emitted);
    if every chain diverges a :class:`DivergenceError` is raised.  ``require_rhat=True`` raises a
    :class:`ParameterError` when R̂ cannot be computed (fewer than 2 chains or 4 draws).
    See the module docstring for the nβ default, the burn-in rule and the initial-loss estimate.

    Defaults (``LLC_DEFAULTS``, from measurements — docs/bayes.md): ``localization`` = 1,
    ``num_chains`` = 8, ``num_draws`` = 1000, ``lr='auto'`` (chosen by :func:`calibrate`; its table is
    in ``diagnostics['calibration']`` and its warnings join the diagnostics').  A localisation share
    q = γ·E‖w − w*‖²/P above 0.9 is warned (λ̂ then measures γ, not the loss).

    ``extrapolate_lr=True`` removes SGLD's first-order step-size bias at no extra cost: the first
    half of the chains runs at ``lr``, the second at ``lr/2``, and λ̂ = 2 λ̂(lr/2) − λ̂(lr)
    (Richardson–Romberg; needs an even ``num_chains`` ≥ 4 and one scalar ``lr``).  The two group
    estimates and the bias estimate are in ``diagnostics['extrapolation']``; ``llc_per_chain`` are the
    raw per-chain values (each group keeps its own bias).
    """
    for k, v in LLC_DEFAULTS.items():
        sample_kwargs.setdefault(k, v)
    if extrapolate_lr:
        C = sample_kwargs["num_chains"]
        if not isinstance(C, (int, np.integer)) or isinstance(C, bool) or C < 4 or C % 2:
            raise ParameterError("num_chains", C, "an even number >= 4 when extrapolate_lr=True (half the chains at lr, half at lr/2)")
        if isinstance(lr, (list, tuple, np.ndarray)) or (hasattr(lr, "dim") and lr.dim() > 0):
            raise ParameterError("lr", lr, "one positive number (or 'auto') when extrapolate_lr=True")
        if sample_kwargs.get("sampler", "sgld") in ("mala", "gibbs"):
            raise ParameterError("extrapolate_lr", True, f"False with sampler='{sample_kwargs['sampler']}' (no step-size bias)")
    if require_rhat:
        C = sample_kwargs["num_chains"]
        D = sample_kwargs["num_draws"]
        if isinstance(C, int) and C < 2:
            raise ParameterError("num_chains", C, ">= 2 when R-hat is requested")
        if isinstance(D, int) and D < 4:
            raise ParameterError("num_draws", D, ">= 4 when R-hat is requested (split-R̂ halves each chain)")
    if "nbeta" in sample_kwargs and isinstance(sample_kwargs["nbeta"], (list, tuple, np.ndarray)):
        raise ParameterError("nbeta", sample_kwargs["nbeta"], "a single positive number (use beta_sweep for several)")
    cal = None
    if isinstance(lr, str) and lr == "auto":
        if sample_kwargs.get("sampler", "sgld") == "gibbs":
            lr = 1.0  # exact sweeps: no step size
        else:
            from .calibration import calibrate

            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                cal = calibrate(model, data, loss_fn, **{k: sample_kwargs[k] for k in _CALIBRATION_KEYS if k in sample_kwargs})
            for w in caught:
                if not issubclass(w.category, AccuracyWarning):
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            lr = cal.lr
    elif isinstance(lr, str):
        raise ParameterError("lr", lr, "a positive number, one per chain, or 'auto'")
    if extrapolate_lr:
        lr = check_positive("lr", lr)
        C = sample_kwargs["num_chains"]
        lr = [float(lr)] * (C // 2) + [float(lr) / 2] * (C // 2)
    sample_kwargs["lr"] = lr
    res = sample(model, data, loss_fn, **sample_kwargs)
    out = _richardson(res, require_rhat) if extrapolate_lr else llc_from_samples(res, require_rhat=require_rhat)
    if cal is not None:
        out.diagnostics["calibration"] = cal.to_dict()
        out.diagnostics["warnings"] = [f"calibration: {w}" for w in cal.warnings] + out.diagnostics["warnings"]
    for w in out.diagnostics["warnings"]:
        if w not in res.warnings:  # the sampler's own warnings were emitted when they arose
            warnings.warn(w, ConvergenceWarning, stacklevel=2)
    return out
