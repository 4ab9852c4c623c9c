"""Choose the SGLD step size ε from short pilot runs, and sanity-check γ and nβ.

All candidate step sizes run in *one* vectorised pilot (``chains_per_lr`` chains each, one ε per
chain).  A candidate passes when

1. **stable**: no chain diverged (NaN/Inf, runaway) and ε·(nβ h_max + γ) < 4 at w*;
2. **accurate**: the mean Metropolis–Hastings acceptance probability of the Langevin proposal is at
   least ``min_acceptance`` (0.99): the discretisation error per step is small.  It is measured
   along *exact* MALA chains on the full data (``pilot='mala'``, the default for in-memory data), so
   that it is the acceptance at the target itself; along SGLD's own, biased path (``pilot='sgld'``,
   on each step's minibatch — devinterp's diagnostic; used for DataLoaders) it comes out too high
   (0.91 vs 0.70 on a singular DLN, where the chosen steps then gave λ̂ 20–30 % high);
3. **flat**: after the pilot burn-in the loss trace has no significant drift (|z| ≤ ``max_drift_z``,
   :func:`deepeft.bayes.diagnostics.trace_drift`): the chains equilibrated within the pilot.

The *largest* passing ε is chosen (fastest mixing among the accurate ones) and the reasons for
every candidate are reported, with a burn-in recommendation of 3/(εγ) steps (three relaxation times
of the directions only the localisation holds; see :func:`deepeft.bayes.estimate_llc`'s warnings).  Checks on γ and nβ: the localisation share
q = γ·E‖w − w*‖²/P (1 for a loss that does not constrain the chains at all; warned above 0.95) and
whether the distance to w* still drifts (γ too weak), nβ > n (β > 1, colder than the posterior).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from torch import nn

from ..core.errors import AccuracyWarning, DivergenceError, ParameterError, check_int, check_positive
from ..core.jsonutil import to_jsonable as _jsonable
from .diagnostics import trace_drift
from .chains import LLC_DEFAULTS
from ._data import num_samples, split_data
from .samplers import default_nbeta, sample, top_curvature


@dataclass
class CalibrationResult:
    lr: float
    reason: str
    table: list
    nbeta: float
    localization: float
    localization_share: float
    warnings: list = field(default_factory=list)
    #: 3/(lr·γ): three relaxation times of the directions only the localisation holds (None if γ = 0)
    num_burnin_steps: int | None = None

    def to_dict(self) -> dict:
        return _jsonable(self.__dict__)

    def summary(self) -> str:
        lines = [f"chosen lr = {self.lr:.3g}: {self.reason}",
                 (f"  recommended num_burnin_steps >= {self.num_burnin_steps} (3/(lr·γ): free directions relax over 1/(lr·γ) steps)"
                  if self.num_burnin_steps is not None else "  localization = 0: no relaxation-time bound on the burn-in"),
                 f"  nβ = {self.nbeta:.4g}, localization γ = {self.localization:.3g}, localization share q = {self.localization_share:.3f}",
                 "  lr          stable  accept  drift_z  llc_hat   verdict"]
        for r in self.table:
            lines.append(f"  {r['lr']:<10.3g}  {str(r['stable']):<6}  {r['acceptance']:<6.3f}  {r['drift_z']:<7.2f}  "
                         f"{r['llc_hat']:<8.4g}  {r['verdict']}")
        for w in self.warnings:
            lines.append(f"  warning: {w}")
        return "\n".join(lines)


#: pilot acceptance target.  Measured along *exact* (MALA) chains, the mean Metropolis–Hastings
#: acceptance of the Langevin proposal falls as ε^{3/2}; SGLD's bias in λ̂ grows like ε.  On the
#: [2,1,2] deep linear network at w* = 0, γ = 1 (exact λ̂ in closed form, bench/defaults/calibrate_dln.py),
#: 1 − acceptance ≤ 0.01 keeps the SGLD λ̂ within ~5 % (and within 2σ) at nβ = 144.76, 10³, 10⁴; the
#: former target 0.9, measured along SGLD's own (wider, biased) path, let through steps that were
#: 20–30 % high.
MIN_ACCEPTANCE = 0.99
#: candidate step sizes: this many values log-spaced over [1e-3, 10)·4/a (the curvature a met at draws
#: from the localisation Gaussian overestimates the one the chains meet when the loss confines them)
NUM_CANDIDATES = 16
#: the pilot runs MALA on the full data (its acceptance then measures the discretisation error of the
#: step on the target itself) when the data set is in memory and at most this large; above, or for a
#: DataLoader, the acceptance is computed along SGLD's own path on each step's minibatch
MALA_PILOT_MAX_N = 50000


def _check_inputs(model, data, loss_fn, sample_kwargs) -> bool:
    """The sampler's own checks of the model, data and loss (scalar, finite, target shapes), by a one-step
    run before the curvature probe; True for in-memory data."""
    kw = {k: sample_kwargs[k] for k in ("params", "n", "device", "batch_size", "chunk_size", "init_loss_batches")
          if k in sample_kwargs}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AccuracyWarning)
        sample(model, data, loss_fn, lr=1e-12, nbeta=1.0, num_chains=1, num_draws=1, num_burnin_steps=0,
               check_stability=False, keep_final=False, **kw)
    return split_data(data)[2] is None


def calibrate(model: nn.Module, data: Any, loss_fn: Any = "mse", *, lrs: Sequence[float] | None = None,
              nbeta: float | None = None, localization: float = LLC_DEFAULTS["localization"], chains_per_lr: int = 2,
              num_steps: int = 1000, min_acceptance: float = MIN_ACCEPTANCE, max_drift_z: float = 4.0, seed: int = 0,
              pilot: str = "auto", **sample_kwargs) -> CalibrationResult:
    """Pick ε for :func:`estimate_llc` (see module docstring).  Returns a :class:`CalibrationResult`.

    ``lrs``: candidate step sizes (default: 16 values log-spaced over [1e-3, 10)·4/a with
    a = nβ·h + γ and h the largest top Hessian eigenvalue of L_n at w* and at 4 draws from the
    localisation Gaussian N(w*, I/γ) — at a singular w*, whose Hessian vanishes, the curvature the
    chains meet grows with nβ; when a = 0 pass ``lrs``).  ``num_steps`` pilot steps per chain, the
    first half burn-in.  ``pilot``: ``'mala'`` (acceptance along exact MALA chains on the full data),
    ``'sgld'`` (along SGLD's own path, on each step's minibatch) or ``'auto'`` (MALA for in-memory
    data with n ≤ 50000, else SGLD).
    """
    cpl = check_int("chains_per_lr", chains_per_lr, 1)
    T = check_int("num_steps", num_steps, 16)
    if not 0.0 < float(min_acceptance) < 1.0:
        raise ParameterError("min_acceptance", min_acceptance, "0 < min_acceptance < 1")
    check_positive("max_drift_z", max_drift_z)
    if pilot not in ("auto", "mala", "sgld"):
        raise ParameterError("pilot", pilot, "'auto', 'mala' or 'sgld'")
    for k in ("lr", "num_chains", "num_draws", "num_burnin_steps", "mala_every", "checkpoint", "sampler"):
        if k in sample_kwargs:
            raise ParameterError(k, sample_kwargs[k], "not given to calibrate (it sets it)")
    n = num_samples(data, sample_kwargs.get("n"))
    in_memory = _check_inputs(model, data, loss_fn, sample_kwargs)
    if pilot == "auto":
        pilot = "mala" if (in_memory and n <= MALA_PILOT_MAX_N and sample_kwargs.get("precondition") is None) else "sgld"
    if pilot == "mala" and not in_memory:
        raise ParameterError("pilot", pilot, "'sgld' or 'auto' for a DataLoader (MALA needs the full-data loss)")
    if lrs is None:
        nb = default_nbeta(n) if nbeta is None else check_positive("nbeta", nbeta)
        h = top_curvature(model, data, loss_fn, params=sample_kwargs.get("params"), seed=seed,
                          localization=localization, num_points=4)
        a = nb * h + localization
        if a <= 0:
            raise ParameterError("lrs", None, "candidate step sizes (the loss is flat at w* and localization = 0)")
        lrs = list(4.0 / a * np.logspace(-3, 1, NUM_CANDIDATES, endpoint=False))
    else:
        lrs = [check_positive("lrs[i]", v) for v in lrs]
        if not lrs:
            raise ParameterError("lrs", lrs, "at least one candidate step size")
    # MALA rejects instead of diverging: candidates beyond SGLD's stability bound at w*,
    # ε·(nβ·h(w*) + γ) ≥ 4, are marked unstable as the SGLD pre-check would
    sgld_bound = float("inf")
    if pilot == "mala":
        nb0 = default_nbeta(n) if nbeta is None else check_positive("nbeta", nbeta)
        a0 = nb0 * top_curvature(model, data, loss_fn, params=sample_kwargs.get("params"), seed=seed) + localization
        sgld_bound = 4.0 / a0 if a0 > 0 else float("inf")
    lr_chain = [e for e in lrs for _ in range(cpl)]
    kw = dict(sample_kwargs)
    if pilot == "mala":
        kw.pop("batch_size", None)
        kw.pop("loss_eval", None)
        kw.update(sampler="mala")
    else:
        kw.update(mala_every=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AccuracyWarning)
        try:
            res = sample(model, data, loss_fn, lr=lr_chain, nbeta=nbeta, localization=localization,
                         num_chains=len(lr_chain), num_draws=T - T // 2, num_burnin_steps=T // 2,
                         seed=seed, keep_final=False, **kw)
        except DivergenceError as exc:
            raise ParameterError("lrs", [float(v) for v in lrs],
                                 f"candidates of which at least one is stable (all diverged: {exc}; lower lr or raise localization)") from None
    nb = float(res.nbeta)
    table = []
    for k, e in enumerate(lrs):
        idx = np.arange(k * cpl, (k + 1) * cpl)
        stable = not bool(res.diverged[idx].any()) and e < sgld_bound
        row = {"lr": e, "stable": stable, "acceptance": float("nan"), "drift_z": float("nan"), "llc_hat": float("nan")}
        if stable:
            tr = res.loss_trace[idx]
            row["acceptance"] = float(np.mean(res.mala_acceptance[idx]))
            row["drift_z"] = trace_drift(tr) if tr.shape[1] >= 8 else float("nan")
            row["llc_hat"] = nb * (float(tr.mean()) - res.init_loss)
            reasons = []
            if row["acceptance"] < min_acceptance:
                reasons.append(f"acceptance {row['acceptance']:.3f} < {min_acceptance}")
            if not abs(row["drift_z"]) <= max_drift_z:
                reasons.append(f"trace not flat (|z| = {abs(row['drift_z']):.1f} > {max_drift_z})")
            row["verdict"] = "ok" if not reasons else "; ".join(reasons)
        else:
            bad = [res.divergence_reason[i] for i in idx if res.diverged[i]]
            row["verdict"] = "diverged: " + (bad[0] if bad else f"lr ≥ {sgld_bound:.3g}, beyond the SGLD stability bound 4/(nβ·h_max + γ) at w*")
        table.append(row)
    passing = [r for r in table if r["verdict"] == "ok"]
    msgs: list[str] = []
    if passing:
        best = max(passing, key=lambda r: r["lr"])
        reason = (f"largest of {len(passing)}/{len(lrs)} candidates that are stable, have MH acceptance ≥ {min_acceptance} "
                  f"and a flat trace (acceptance {best['acceptance']:.3f}, drift z {best['drift_z']:.2f})")
    else:
        stable_rows = [r for r in table if r["stable"]]
        if not stable_rows:
            raise ParameterError("lrs", lrs, "candidates of which at least one is stable (all diverged: lower lr or raise localization)")
        acc_rows = [r for r in stable_rows if r["acceptance"] >= min_acceptance]
        best = max(acc_rows, key=lambda r: r["lr"]) if acc_rows else min(stable_rows, key=lambda r: r["lr"])
        reason = ("no candidate passed every check; chose the largest stable one with acceptance ≥ "
                  f"{min_acceptance}" if acc_rows else "no candidate reached the acceptance target; chose the smallest stable one")
        msgs.append(reason + " — lengthen num_steps (trace not flat) or widen lrs")
    # γ and nβ checks from the chosen candidate's chains
    k = lrs.index(best["lr"])
    idx = np.arange(k * cpl, (k + 1) * cpl)
    P = res.layout.P
    dist = res.distance_trace[idx]
    q = float(localization * np.nanmean(dist) / P) if localization > 0 else float("nan")
    if localization > 0 and q > 0.95:
        msgs.append(f"localization share q = {q:.2f}: the chains spread as far as the Gaussian localisation alone allows — "
                    f"the loss barely constrains them at nβ = {nb:.3g}; λ̂ is set by γ (raise nβ or lower γ)")
    if dist.shape[1] >= 8:
        dz = trace_drift(dist)
        if dz > max_drift_z:
            msgs.append(f"‖w − w*‖² still growing in the pilot (z = {dz:.1f}): localization γ = {localization:.3g} may be too weak")
    if nb > res.n:
        msgs.append(f"nβ = {nb:.3g} > n = {res.n} (β > 1: colder than the Bayesian posterior)")
    for m_ in msgs:
        warnings.warn(m_, AccuracyWarning, stacklevel=2)
    burnin = int(math.ceil(3.0 / (best["lr"] * localization))) if localization > 0 else None
    return CalibrationResult(lr=float(best["lr"]), reason=reason, table=table, nbeta=nb, localization=float(localization),
                             localization_share=q, warnings=msgs, num_burnin_steps=burnin)
