"""The one sampling loop: every kernel (:mod:`deepeft.bayes.kernels`) runs through :func:`run`.

The driver owns what is not specific to an update rule: the pre-flight checks and the health of the
chains (a chain is stopped and reported — never averaged silently — when its loss becomes NaN/Inf,
its parameters do, or ‖w − c‖² exceeds ``divergence_radius_factor``·P/γ), the schedule of draws
(draw j is the state w_{B + 1 + j·k}: burn-in states and the initial point are never draws), the
estimators recorded at each draw (callbacks over draws: the loss, a second minibatch loss, ‖w − c‖²,
observables, the parameters), Metropolis–Hastings acceptance from the kernels' ``info``, the
checkpoint (the kernel's state field by field, the generator, the minibatch order, everything
recorded so far) and Ctrl-C, and the :class:`~deepeft.bayes.chains.SampleResult`.

Health checks are batched: losses are checked every ``CHECK_EVERY`` steps (one host sync per block;
the first non-finite step of each chain is found in the block, so the recorded divergence step is
exact) and the radius on the state after every ``CHECK_EVERY``-th step.
"""
from __future__ import annotations

import signal
import time
import warnings
from contextlib import nullcontext
from typing import Any, Callable

import numpy as np
import torch
from torch.func import functional_call, vmap

from ..core.errors import DivergenceError, ParameterError
from ..core.interrupts import catch_interrupts
from ..core.progress import progress_bar
from ._data import InMemoryData, split_data
from .chains import DivergenceWarning, SampleResult
from .kernels.base import Kernel, Problem, Settings

CHECK_EVERY = 10


class Health:
    """Which chains are alive, when and why the others stopped, and the run's messages."""

    def __init__(self, C: int, dev, on_divergence: str):
        self.C = C
        self.alive = torch.ones(C, dtype=torch.bool, device=dev)
        self.div_step = np.full(C, -1, dtype=np.int64)
        self.div_reason = [""] * C
        self.all_alive = True
        self.messages: list[str] = []
        self.on_divergence = on_divergence

    def stop(self, mask: torch.Tensor, step: int, reason: str) -> None:
        newly = mask & self.alive
        if not bool(newly.any()):
            return
        for ci in torch.nonzero(newly).flatten().tolist():
            self.div_step[ci] = step
            self.div_reason[ci] = reason
        self.alive = self.alive & ~newly
        self.all_alive = False
        if self.on_divergence == "raise":
            raise DivergenceError(f"chain(s) {torch.nonzero(newly).flatten().tolist()} diverged at step {step}: {reason}")
        if not bool(self.alive.any()):
            raise DivergenceError(f"all {self.C} chains diverged (last at step {step}: {reason}); lower lr or raise localization")

    def stop_at_start(self, ci: int, reason: str) -> None:
        self.alive[ci] = False
        self.div_step[ci] = 0
        self.div_reason[ci] = reason

    def note(self, msg: str) -> None:
        self.messages.append(msg)

    def warn(self, msg: str, category) -> None:
        self.messages.append(msg)
        warnings.warn(msg, category, stacklevel=5)

    def state(self) -> dict:
        return dict(alive=self.alive, div_step=self.div_step.copy(), div_reason=list(self.div_reason),
                    all_alive=self.all_alive)

    def load(self, st: dict, dev) -> None:
        self.alive = st["alive"].to(dev)
        self.div_step[:] = st["div_step"]
        self.div_reason[:] = st["div_reason"]
        self.all_alive = bool(st["all_alive"])


# ------------------------------------------------------------------ estimators: callbacks over draws
def draw_recorders(p: Problem, kernel: Kernel, s: Settings) -> dict[str, Callable]:
    """name -> f(state, d2) giving that draw's (chains, …) value; called in this order at every draw
    (the second minibatch of 'two_batch' comes from the run's generator, after the gradient's)."""
    rec: dict[str, Callable] = {}

    if s.loss_eval == "full" and not kernel.exact_loss:
        rec["loss"] = lambda st, d2: p.engine.full_loss(st.position, p.src, p.chunk_size)
    else:
        rec["loss"] = lambda st, d2: st.loss
    if s.loss_eval == "two_batch":
        def pair(st, d2):
            xb2, yb2, xdim2 = p.src.next_batch()
            with torch.no_grad():
                return p.engine.losses(st.position, xb2, yb2, xdim2).cpu()
        rec["pair"] = pair
    rec["dist"] = lambda st, d2: d2
    if s.observable is not None:
        rec["obs"] = observable_recorder(p, s.observable, s.probe)
    if s.record_params:
        rec["params"] = lambda st, d2: st.position.to("cpu", copy=True)
    return rec


def observable_recorder(p: Problem, observable: Callable, probe: Any) -> Callable:
    """f(output, target) -> tensor[k] on the probe data (default: the first ≤ 1024 samples), vmapped
    over chains (chains one by one if the observable cannot be vmapped)."""
    if probe is None:
        px, py = p.src.subsample(min(p.n, 1024))
    else:
        px, py, pl = split_data(probe)
        if pl is not None:
            raise ParameterError("probe", "a DataLoader", "in-memory tensors (x, y)")
        px, py = px.to(p.dev), (None if py is None else py.to(p.dev))
    model, layout = p.model, p.layout

    def obs_single(pdict):
        out = functional_call(model, (pdict, layout.frozen), (px,))
        return torch.as_tensor(observable(out, py)).reshape(-1)

    obs_vm = vmap(obs_single)

    def record(st, d2):
        fl = st.position
        with torch.no_grad():
            try:
                o = obs_vm(layout.views(fl))
            except Exception:  # observable not vmappable: fall back to chains one by one
                o = torch.stack([obs_single(layout.views(fl[i])) for i in range(fl.shape[0])])
        return o.cpu()

    return record


# --------------------------------------------------------------------------------------- the loop
def run(kernel: Kernel, s: Settings, t_start: float) -> SampleResult:
    """Run ``kernel`` for the draws in ``s`` and assemble the result (module docstring)."""
    p = kernel.problem
    C, P, dev, dtype, gen = p.C, p.P, p.dev, p.dtype, p.gen
    c, B, D, K = p.c, s.B, s.D, s.K
    health = Health(C, dev, s.on_divergence)

    curvature = kernel.preflight(health)
    if not bool(health.alive.any()):
        raise DivergenceError("all chains are beyond the stability bound before sampling: " + health.div_reason[0])
    if s.on_divergence == "raise" and not bool(health.alive.all()):
        raise DivergenceError(next(r for r in health.div_reason if r))
    health.all_alive = bool(health.alive.all())
    flat0 = torch.where(health.alive[:, None], p.init, c)
    # radius bound for the runaway detector: P/γ is the mean squared radius of the localising Gaussian alone
    radius2 = s.divergence_radius_factor * (P / p.gamma if p.gamma > 0 else float("inf"))
    radius2 = max(radius2, 100.0 * float(((flat0 - c) ** 2).sum(1).max()))
    recorders = draw_recorders(p, kernel, s)

    last_draw = B + 1 + (D - 1) * K
    total = last_draw + 1
    draw_of_step = {B + 1 + j * K: j for j in range(D)}
    draw_steps = np.array(sorted(draw_of_step), dtype=np.int64)

    ck_fp = ck_cfg = ck_state = None
    if s.checkpoint is not None:
        from . import checkpoint as ckpt

        ck_cfg = checkpoint_config(p, s)
        ck_fp = ckpt.fingerprint(ck_cfg, ckpt.tensor_digest(flat0, c, p.x, p.y))
        ck_state = ckpt.load(s.checkpoint, ck_fp, ck_cfg)

    step_loss: list = []  # per step: (C,) losses; chains that are stopped are masked when the run ends
    records: dict[str, list] = {k: [] for k in recorders}  # per draw, stacked when the run ends
    acc_sum, acc_cnt = torch.zeros(C, dtype=dtype, device=dev), 0
    s0 = 0
    if ck_state is None:
        state = kernel.init(flat0)
    else:  # resume: the loop state at the top of step s0
        s0 = int(ck_state["step"])
        gen.set_state(ck_state["gen"])
        if p.src is not None:
            p.src.load_state(ck_state["src"])
        state = kernel.state_type(**_to(ck_state["state"], dev))
        step_loss = list(ck_state["step_loss"].to(dev).unbind(0)) if ck_state["step_loss"] is not None else []
        records = {k: _rows(ck_state["records"].get(k), dev if k in ("loss", "dist") else None) for k in recorders}
        health.load(ck_state["health"], dev)
        acc_sum, acc_cnt = ck_state["acc_sum"].to(dev), int(ck_state["acc_cnt"])

    def snapshot(step: int) -> dict:
        return dict(fingerprint=ck_fp, config=ck_cfg, step=step,
                    state={f: getattr(state, f) for f in state.__dataclass_fields__},
                    gen=gen.get_state(), src=None if p.src is None else p.src.state(),
                    step_loss=torch.stack(step_loss) if step_loss else None,
                    records={k: (torch.stack(v) if v else None) for k, v in records.items()},
                    health=health.state(), acc_sum=acc_sum, acc_cnt=acc_cnt)

    d2_cur = None
    # with a checkpoint, Ctrl-C (SIGINT) is taken at the next step boundary: saved, then re-raised
    interrupts = (catch_interrupts(raise_now=False, signals=(signal.SIGINT,)) if s.checkpoint is not None
                  else nullcontext({"hit": False}))
    # an interrupt is taken at the next step boundary; one that arrives while the kernel evaluates
    # the new state (which belongs to the next step) one boundary later
    pending = False
    with interrupts as intr, progress_bar(total, f"{s.sampler} {C} chains", progress=s.progress, unit="step",
                                          initial=s0) as pbar:
        for st in range(s0, total):
            if s.checkpoint is not None and st > s0 and (pending or st % s.checkpoint_every == 0 or st == last_draw):
                ckpt.save(s.checkpoint, snapshot(st))
            if pending:
                raise KeyboardInterrupt(f"interrupted at step {st} of {total}; "
                                        + (f"the state is saved in {s.checkpoint}: run the same call again to resume"
                                           if st > s0 else f"nothing new to save in {s.checkpoint}"))
            step_loss.append(state.loss)
            if kernel.can_diverge and (st % CHECK_EVERY == CHECK_EVERY - 1 or st == last_draw):
                lo = st - st % CHECK_EVERY
                fin = torch.isfinite(torch.stack(step_loss[lo:st + 1]))
                if not bool(fin.all()):
                    bad_any = ~fin.all(0)
                    for ci in torch.nonzero(bad_any & health.alive).flatten().tolist():
                        first = lo + int(torch.nonzero(~fin[:, ci])[0, 0])
                        health.stop(torch.arange(C, device=dev) == ci, first,
                                    "loss became NaN/Inf (or the gradient did at the step before)")
            if st in draw_of_step:
                if d2_cur is None:
                    d2_cur = kernel.distance2(state)
                for k, f in recorders.items():
                    records[k].append(f(state, d2_cur))
            if st == last_draw:
                break
            state, info = kernel.move(gen, state)
            pending = intr["hit"]
            with torch.no_grad():
                a = info.get("acceptance")
                if a is not None:
                    acc_sum += torch.where(health.alive, a, torch.zeros_like(a))
                    acc_cnt += 1
                # ‖w − c‖² of the next state, computed at most once per step (runaway check + distance trace)
                d2_cur = kernel.distance2(state) if (st + 1) in draw_of_step else None
                if kernel.can_diverge and st % CHECK_EVERY == 0:
                    d2 = d2_cur = d2_cur if d2_cur is not None else kernel.distance2(state)
                    nonfinite = ~torch.isfinite(d2)
                    if bool((nonfinite & health.alive).any()):
                        health.stop(nonfinite, st + 1, "weights became NaN/Inf (NaN/Inf gradient)")
                    runaway = d2 > radius2
                    if bool((runaway & health.alive).any()):
                        health.stop(runaway, st + 1, f"‖w − center‖² exceeded {radius2:.3g} (runaway: lr too large for the "
                                                     f"curvature met, or localization too weak)")
                if not health.all_alive:
                    state.position[~health.alive] = c  # stopped chains wait at the centre (masked at the end)
            state = kernel.evaluate(state)
            if pbar is not None:
                pbar.update(1)
    return _result(kernel, s, state, st, step_loss, records, draw_steps, health, acc_sum, acc_cnt, curvature, t_start)


def _to(x, dev):
    if isinstance(x, torch.Tensor):
        return x.to(dev)
    if isinstance(x, dict):
        return {k: _to(v, dev) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_to(v, dev) for v in x)
    return x


def _rows(t, dev) -> list:
    if t is None:
        return []
    return list((t if dev is None else t.to(dev)).unbind(0))


def checkpoint_config(p: Problem, s: Settings) -> dict:
    """The settings a checkpoint must match to be resumed (with the digest of the starting tensors)."""
    return dict(sampler=s.sampler, lr=p.lrs if all(v == v for v in p.lrs) else None, localization=p.gamma,
                nbeta=p.nbetas, num_chains=p.C, num_draws=s.D, num_burnin_steps=s.B, num_steps_bw_draws=s.K,
                batch_size=getattr(p.src, "b", None), n=p.n, loss_eval=s.loss_eval,
                precondition="rmsprop" if s.precondition == "rmsprop" else None,
                rmsprop=[s.rmsprop_alpha, s.rmsprop_eps] if s.precondition == "rmsprop" else None,
                mala_every=s.mala_every, seed=int(s.seed), params=list(p.layout.names),
                record_params=bool(s.record_params), observable=s.observable is not None,
                loss=s.loss_name,
                dtype=str(p.dtype), device=p.dev.type)


def _result(kernel, s, state, last, step_loss, records, draw_steps, health, acc_sum, acc_cnt, curvature, t_start):
    p = kernel.problem
    C = p.C
    div_step = health.div_step
    # a chain stopped at step s_c contributes no step loss and no draw at or after s_c
    dead_after = torch.as_tensor(np.where(div_step >= 0, div_step, np.iinfo(np.int64).max))
    sl = torch.where(torch.arange(last + 1)[None, :] < dead_after[:, None], torch.stack(step_loss).T.cpu(), torch.nan)
    keep = torch.as_tensor(draw_steps)[None, :] < dead_after[:, None]            # (C, D)

    def masked(name):
        if name not in records:
            return None
        v = torch.stack(records[name], 1).cpu()
        return torch.where(keep if v.dim() == 2 else keep[:, :, None], v, torch.nan).numpy()

    diverged = div_step >= 0
    if diverged.any():
        msg = (f"{int(diverged.sum())}/{C} chains diverged and were stopped: "
               + "; ".join(f"chain {i} at step {div_step[i]}: {health.div_reason[i]}" for i in np.nonzero(diverged)[0]))
        health.messages.append(msg)
        warnings.warn(msg, DivergenceWarning, stacklevel=4)
    rms = s.precondition == "rmsprop"
    nb_uniform = p.nb_uniform
    over = kernel.result_fields()
    config = dict(sampler=s.sampler, lr=p.lrs, localization=p.gamma, nbeta=(p.nbetas[0] if nb_uniform else p.nbetas),
                  n=p.n, num_chains=C, num_draws=s.D, num_burnin_steps=s.B, num_steps_bw_draws=s.K,
                  batch_size=(p.src.b if isinstance(p.src, InMemoryData) else getattr(p.loader, "batch_size", None)),
                  precondition="rmsprop" if rms else None, loss_eval=s.loss_eval, seed=int(s.seed), device=str(p.dev),
                  sampled_params=list(p.layout.names), num_sampled=p.P,
                  init_loss_source=("all data" if p.loader is None else
                                    f"DataLoader average over {'all' if s.init_loss_batches is None else s.init_loss_batches} batches"))
    config.update(over.pop("config", {}))
    fields = dict(
        loss_trace=masked("loss"), step_loss=sl.numpy(), distance_trace=masked("dist"), init_loss=p.init_loss, n=p.n,
        nbeta=p.nbetas[0] if nb_uniform else np.asarray(p.nbetas), localization=p.gamma, lr=np.asarray(p.lrs),
        sampler=s.sampler, loss_eval=s.loss_eval, num_burnin_steps=s.B, num_steps_bw_draws=s.K, diverged=diverged,
        divergence_step=div_step, divergence_reason=health.div_reason,
        mala_acceptance=(acc_sum / acc_cnt).cpu().numpy() if acc_cnt else None,
        pair_loss_trace=masked("pair"), observables=masked("obs"), param_draws=masked("params"),
        final_flat=kernel.final_flat(state) if s.keep_final else None, layout=p.layout, curvature=curvature,
        wall_time=0.0, warnings=health.messages, config=config)
    fields.update(over)
    fields["wall_time"] = time.perf_counter() - t_start
    return SampleResult(**fields)
