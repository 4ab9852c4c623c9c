"""Natural degradation: networks moved by SGLD to a controlled loss increase.

At stationarity of the localised tempered posterior, E[L_n] − L_n(w*) = λ̂(β)/(nβ) (the LLC
relation), so a *temperature* fixes the expected loss increase.  Given a target Δloss we
therefore (1) run short pilot chains at a log-grid of nβ values — all in one vectorised call —
measure Δ(nβ) = E[L_n] − L_n(w*), (2) interpolate log Δ against log nβ to the target and (3) run
``num_models`` chains at that nβ and return their final states as models, with each model's
*measured* full-data loss increase.  Given a temperature (``nbeta``) directly, only step (3) runs.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..core.errors import AccuracyWarning, ParameterError, check_int, check_positive
from ..core.jsonutil import to_jsonable as _jsonable
from .samplers import default_nbeta, sample, top_curvature
from ._data import InMemoryData, LoaderData, num_samples, resolve_loss, split_data


@dataclass
class DegradeResult:
    models: list
    delta_loss: np.ndarray
    init_loss: float
    nbeta: float
    lr: float
    target_delta_loss: float | None
    pilot: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return _jsonable({"delta_loss": self.delta_loss, "init_loss": self.init_loss, "nbeta": self.nbeta, "lr": self.lr,
                          "target_delta_loss": self.target_delta_loss, "num_models": len(self.models),
                          "pilot": self.pilot, "warnings": self.warnings})


def _full_losses(models: list, data, loss_fn, device) -> np.ndarray:
    """Each model's full-data L_n (chunks of 4096 rows, or the DataLoader's batches)."""
    x, y, loader = split_data(data)
    src = LoaderData(loader, device) if loader is not None else InMemoryData(x, y, x.shape[0], 1, device, None)
    lf = resolve_loss(loss_fn)
    out = []
    for m in models:
        m.eval()
        tot, k = 0.0, 0
        with torch.no_grad():
            for xb, yb, w in src.chunks(4096):
                tot += float(lf(m(xb), yb)) * w
                k += w
        out.append(tot / k)
    return np.asarray(out)


#: ε·(nβ·h_max + γ) of the automatic step size: the stiffest direction's variance is inflated by
#: 1/(1 − 0.1) ≈ 1.11 (quadratic approximation), a tenth of the SGLD stability bound 4
AUTO_LR_MARGIN = 0.4
#: pilot rounds beyond the first when the target Δloss lies outside the measured range (3 decades of nβ each)
PILOT_EXTENSIONS = 2


def degrade(model: nn.Module, data: Any, loss_fn: Any = "mse", *, target_delta_loss: float | None = None,
            nbeta: float | None = None, num_models: int = 4, localization: float = 100.0, lr: float | None = None,
            num_steps: int = 1000, pilot_nbetas: int = 8, pilot_steps: int | None = None, seed: int = 0,
            **sample_kwargs) -> DegradeResult:
    """Degraded copies of ``model``: SGLD at a temperature chosen for ``target_delta_loss`` (or at ``nbeta``).

    Exactly one of ``target_delta_loss`` (> 0, in units of the loss) and ``nbeta`` must be given.
    Each returned model is the final state of an independent chain after ``num_steps`` SGLD steps
    (the original model is untouched); ``delta_loss`` holds each one's full-data L_n − L_n(w*).
    ``lr=None`` (default) sets the step size of each temperature from the curvature at w*:
    ε = 0.4/(nβ·h_max + γ), a tenth of the stability bound (one pilot chain per nβ, each with its own ε),
    h_max the largest top Hessian eigenvalue of L_n at w* and at 3 draws from N(w*, I/γ).
    Pilot chains run ``pilot_steps`` (default ``num_steps``) steps; when the target lies outside the
    Δ range they measured, up to two more pilot rounds extend the nβ grid by three decades each.
    Directions held only by the localisation relax over 1/(εγ) steps: a warning says when
    ``num_steps`` is shorter, i.e. when Δ still depends on the run length.
    """
    if (target_delta_loss is None) == (nbeta is None):
        raise ParameterError("target_delta_loss/nbeta", (target_delta_loss, nbeta), "exactly one of the two")
    if sample_kwargs.get("checkpoint") is not None:
        raise ParameterError("checkpoint", sample_kwargs["checkpoint"], "None for degrade (it runs several short samplers)")
    K = check_int("num_models", num_models, 1)
    check_int("num_steps", num_steps, 1)
    if lr is not None:
        lr = check_positive("lr", lr)
    dev = next(model.parameters()).device
    pilot: dict = {}
    msgs: list[str] = []
    n = num_samples(data, sample_kwargs.get("n"))
    h_max = None
    if lr is None:
        # the curvature at w* and at 3 draws from the localisation Gaussian: at a singular w* the Hessian
        # vanishes and only the curvature the chains meet sets a stable step
        h_max = top_curvature(model, data, loss_fn, params=sample_kwargs.get("params"), seed=seed,
                              localization=localization, num_points=3)
        if h_max <= 0 and localization <= 0:
            raise ParameterError("lr", None, "a step size (the loss is flat at w* and localization = 0: no curvature sets one)")

    def step_size(nb: float) -> float:
        return lr if lr is not None else AUTO_LR_MARGIN / (nb * h_max + localization)

    if target_delta_loss is not None:
        target = check_positive("target_delta_loss", target_delta_loss)
        P = check_int("pilot_nbetas", pilot_nbetas, 2)
        T_pilot = num_steps if pilot_steps is None else check_int("pilot_steps", pilot_steps, 8)
        nb0 = default_nbeta(n)
        grid = nb0 * np.logspace(-2, 1, P)
        grids, dls = [], []
        lt = math.log(target)
        for rnd in range(1 + PILOT_EXTENSIONS):
            # Δ over the last quarter of pilot_steps: with pilot_steps = num_steps (the default) the pilot
            # measures what the final chains reach, equilibrated or not
            pr = sample(model, data, loss_fn, nbeta=list(grid), lr=[step_size(g) for g in grid], localization=localization,
                        num_chains=P, num_draws=max(T_pilot // 4, 2), num_burnin_steps=T_pilot - max(T_pilot // 4, 2),
                        seed=seed + 2 * rnd, **sample_kwargs)
            ok = pr.healthy
            grids.append(grid)
            dls.append(np.array([np.mean(pr.loss_trace[i]) - pr.init_loss if ok[i] else np.nan for i in range(P)]))
            g_all, d_all = np.concatenate(grids), np.concatenate(dls)
            good = np.isfinite(d_all) & (d_all > 0)
            if good.sum() < 2 or math.log(d_all[good].min()) <= lt <= math.log(d_all[good].max()):
                break
            # target outside the measured range: pilot the next three decades of nβ in its direction
            # (Δ falls with nβ: a smaller target needs a colder chain)
            span = P / (P - 1) * 3.0
            grid = (g_all.max() * np.logspace(span / P, span, P) if lt < math.log(d_all[good].min())
                    else g_all.min() * np.logspace(-span, -span / P, P))
        order_nb = np.argsort(g_all)
        grid, deltas = g_all[order_nb], d_all[order_nb]
        pilot = {"nbeta": grid.tolist(), "lr": [float(step_size(g)) for g in grid], "delta_loss": deltas.tolist()}
        good = np.isfinite(deltas) & (deltas > 0)
        if good.sum() < 2:
            raise ParameterError("lr", lr, "a step size for which the pilot chains are stable and raise the loss "
                                 f"(pilot Δloss at nβ grid: {deltas.tolist()})")
        lg, ld = np.log(grid[good]), np.log(deltas[good])  # sorted by nβ
        outside = lt < ld.min() or lt > ld.max()
        if outside:
            msgs.append(f"target Δloss {target:.3g} is outside the pilot range [{math.exp(ld.min()):.3g}, "
                        f"{math.exp(ld.max()):.3g}]: extrapolating log Δ(log nβ) linearly")
        # one pilot chain per nβ is noisy: fit log Δ = a + b·log nβ by least squares over the (up to) four
        # grid points whose Δ is nearest the target, then solve for nβ (Δ falls with nβ: b < 0)
        near = np.sort(np.argsort(np.abs(ld - lt))[:4])
        slope, icpt = np.polyfit(lg[near], ld[near], 1)
        if slope >= 0:
            if outside:
                raise ParameterError("target_delta_loss", target, "a loss increase the sampler can reach (Δ did not fall with nβ)")
            order = np.argsort(ld)
            nb = float(math.exp(np.interp(lt, ld[order], lg[order])))
        else:
            nb = float(math.exp(min((lt - icpt) / slope, 700.0)))
        lo_nb, hi_nb = float(grid[good].min()), float(grid[good].max())
        if not (lo_nb / 10 <= nb <= hi_nb * 10):  # extrapolated more than a decade beyond the pilots
            hint = ("a larger Δ needs a weaker localization (Δ saturates as nβ → 0)" if lt > ld.max()
                    else "a smaller Δ needs a larger nβ than the pilots reached")
            raise ParameterError("target_delta_loss", target,
                                 f"a loss increase the pilots bracket: they measured Δ in [{math.exp(ld.min()):.3g}, "
                                 f"{math.exp(ld.max()):.3g}] over nβ in [{lo_nb:.3g}, {hi_nb:.3g}] at localization "
                                 f"{localization:g}; {hint}")
    else:
        nb = check_positive("nbeta", nbeta)
        target = None
    res = sample(model, data, loss_fn, nbeta=nb, lr=step_size(nb), localization=localization, num_chains=K,
                 num_draws=2, num_burnin_steps=max(num_steps - 2, 0), seed=seed + 1, **sample_kwargs)
    models = res.final_models(model)
    deltas = _full_losses(models, data, loss_fn, dev) - res.init_loss
    if len(models) < K:
        msgs.append(f"{K - len(models)} chains diverged; {len(models)} models returned")
    if localization > 0 and num_steps * step_size(nb) * localization < 1.0:
        msgs.append(f"num_steps = {num_steps} is shorter than the localisation relaxation time 1/(lr·localization) = "
                    f"{1 / (step_size(nb) * localization):.3g} steps at nβ = {nb:.4g}: the models are not equilibrated at "
                    f"this temperature, and their Δloss depends on num_steps")
    if target is not None and len(deltas):
        rel = abs(float(np.mean(deltas)) - target) / target
        if rel > 0.5:
            msgs.append(f"mean Δloss {np.mean(deltas):.3g} differs from the target {target:.3g} by {100 * rel:.0f}% "
                        f"(pilot too short or loss landscape not stationary at this temperature)")
    for m_ in msgs:
        warnings.warn(m_, AccuracyWarning, stacklevel=2)
    return DegradeResult(models=models, delta_loss=deltas, init_loss=res.init_loss, nbeta=nb, lr=step_size(nb),
                         target_delta_loss=target, pilot=pilot, warnings=msgs)
