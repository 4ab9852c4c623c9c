"""Trained ensembles: M independently initialised networks trained together, vectorised over networks.

This is the project's one training loop.  It runs on :class:`deepeft.nets.BatchedMLP` (the one
forward pass): parameters are stacked over networks, the forward and the manual backward are
batched matmuls, and every update is a handful of in-place tensor operations on the whole stack —
no Python loop over networks.  Conventions (:mod:`deepeft.conventions`): summed loss
L = ½ Σ_{i,α} (z_{i;α} − y_{i;α})² per network, and the algorithm of PDLT

* ``'gd'``: full-batch gradient descent Δθ = −η·rate·∂L/∂θ with the per-parameter rates of
  ``BatchedMLP.rates()`` (PDLT's λ_W/n_{l-1} per weight and λ_b per bias, expressed in the spec's
  parameterisation), i.e. exactly the dynamics of :mod:`deepeft.theory.training`;
* ``'flow'``: gradient flow dθ/dτ = −rate·∂L/∂θ, integrated by the classical fixed-step RK4 with
  step h ≤ ``flow_step``/λ_max(Θ̃) (Θ̃: the infinite-width training NTK), landing exactly on every
  record time.  On a linear mode of rate λ one RK4 step multiplies by R(x) = 1 − x + x²/2 − x³/6 +
  x⁴/24 (x = hλ) instead of e^{−x}: relative error ≤ x⁵/120 per step (x ≤ 0.25 by default: 8e-6);
* ``'sgd'``: minibatch SGD with the same rates on the summed loss of a minibatch of ``batch_size``
  training inputs; one shuffled order per epoch shared by all networks (seeded by ``seed``;
  :func:`deepeft.theory.training.sgd_schedule`, which the frozen-NTK SGD prediction uses too);
* ``'adam'``: Adam (Kingma & Ba 2015, β = (0.9, 0.999), ε = 1e-8) with one global learning rate
  ``lr`` on every trainable tensor, as practice does (elementwise, so batched = per network).

Divergence: a network whose training loss becomes non-finite or exceeds ``divergence`` × (its
initial loss + 1) is stopped (it receives no further updates) and reported with the step at which it
was caught; its records after that are NaN and every statistic excludes it, saying how many.  With
``tol`` each network stops when its own training loss reaches ``tol`` (so results do not depend on
the chunking), and the run ends early once every network has stopped.  GD, SGD and Adam check both
after every step; gradient flow at the record times (``stopped_at`` then counts RK4 steps).

Chunks are whole RNG blocks of the network initialisation, and no operation mixes networks, so the
result does not depend on ``chunk_size`` (on CPU bit for bit).
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from ..core.errors import ParameterError, check_int, check_positive
from ..core.jsonutil import to_jsonable
from ..core.spec import MLPSpec
from ..core.device import resolve_device, resolve_dtype
from .sampler import available_memory, fmt_bytes

ALGORITHMS = ("gd", "flow", "sgd", "adam")
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


@dataclass
class TrainedEnsemble:
    """Records of a trained ensemble at ``times`` (T record points: GD/SGD/Adam steps, or flow times).

    ``train_out`` (M, T, N_A, n_L) and ``test_out`` (M, T, N_D, n_L) outputs, ``loss`` (M, T) the full
    training loss ½Σ(z − y)², ``ntk`` (M, T, N_A + N_D, N_A + N_D) the empirical NTK on [train; test]
    when asked (n_L = 1), ``diverged`` {network: step caught}, ``stopped_at`` (M,) the step at which
    each network reached ``tol`` (−1: never).  float64 numpy arrays."""

    algorithm: str
    lr: float
    times: np.ndarray
    train_out: np.ndarray
    test_out: np.ndarray
    loss: np.ndarray
    y_train: np.ndarray
    x_train: np.ndarray
    x_test: np.ndarray
    spec: MLPSpec
    ntk: np.ndarray | None = None
    diverged: dict = field(default_factory=dict)
    stopped_at: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    @property
    def M(self) -> int:
        return self.loss.shape[0]

    @property
    def alive(self) -> np.ndarray:
        """Boolean (M,): networks that did not diverge."""
        ok = np.ones(self.M, dtype=bool)
        ok[list(self.diverged)] = False
        return ok

    def stats(self, which: str = "test", t: int = -1) -> dict:
        """Mean over networks and variance over networks of the outputs at record ``t`` (index),
        per input and output unit, with standard errors; only networks that did not diverge.
        SE(mean) = s/√M; SE(var) from the fourth central moment, √((μ₄ − s⁴(M−3)/(M−1))/M)."""
        if which not in ("test", "train"):
            raise ParameterError("which", which, "'test' or 'train'")
        z = (self.test_out if which == "test" else self.train_out)[self.alive, t]  # (M', N, n_L)
        return sample_stats(z)

    def to_dict(self, outputs: bool = False) -> dict:
        d = {"algorithm": self.algorithm, "lr": self.lr, "times": self.times, "M": self.M,
             "diverged": {int(k): int(v) for k, v in self.diverged.items()}, "meta": self.meta,
             "loss_mean": np.nanmean(self.loss[self.alive], axis=0) if self.alive.any() else None}
        if outputs:
            d.update(train_out=self.train_out, test_out=self.test_out, loss=self.loss)
        return to_jsonable(d)


def sample_stats(z: np.ndarray) -> dict:
    """Mean, variance over axis 0 with their standard errors (see :meth:`TrainedEnsemble.stats`)."""
    M = z.shape[0]
    if M < 2:
        raise ParameterError("ensemble", M, ">= 2 networks that did not diverge")
    mean = z.mean(0)
    dz = z - mean
    var = (dz**2).sum(0) / (M - 1)
    m4 = (dz**4).mean(0)
    se_var = np.sqrt(np.clip(m4 - var**2 * (M - 3) / (M - 1), 0, None) / M)
    return {"mean": mean, "se_mean": np.sqrt(var / M), "var": var, "se_var": se_var, "M": M}


# ----------------------------------------------------------------------------------------------
# validation and the record schedule
# ----------------------------------------------------------------------------------------------
def default_record(steps: int, n: int = 40) -> np.ndarray:
    """0, steps and about n log-spaced steps between."""
    pts = np.unique(np.round(np.geomspace(1, max(steps, 1), n)).astype(int))
    return np.unique(np.concatenate([[0], pts[pts <= steps], [steps]]))


def _record_times(record, horizon: float, algorithm: str) -> np.ndarray:
    if record is None:
        if algorithm == "flow":
            return np.concatenate([[0.0], np.geomspace(horizon / 1000, horizon, 40)])
        return default_record(int(horizon)).astype(float)
    r = np.atleast_1d(np.asarray(record, dtype=np.float64))
    if r.ndim != 1 or r.size == 0 or not np.all(np.isfinite(r)) or np.any(r < 0) or np.any(r > horizon):
        raise ParameterError("record", record, f"a non-empty list of times in [0, {horizon:g}]")
    if algorithm != "flow" and np.any(r != np.round(r)):
        raise ParameterError("record", record, "integer steps")
    return np.unique(r)


def stability_bound(spec: MLPSpec, x_train) -> float:
    """2/λ_max of the infinite-width training NTK (:func:`deepeft.theory.training.lr_bound_for`)."""
    from ..theory.training import lr_bound_for
    return lr_bound_for(spec, x_train)


# ----------------------------------------------------------------------------------------------
# the engine
# ----------------------------------------------------------------------------------------------
def train_ensemble(spec: MLPSpec, x_train, y_train, x_test=None, *, ensemble: int = 256, lr: float | None = None,
                   steps: int | None = None, time_horizon: float | None = None, algorithm: str = "gd",
                   tol: float | None = None, record=None, ntk: bool = False, batch_size: int | None = None,
                   seed: int = 0, device="cpu", dtype=torch.float64, chunk_size: int | None = None,
                   flow_step: float = 0.25, divergence: float = 1e8, lr_error_factor: float = 100.0,
                   rng_block: int | None = None, progress: bool = False) -> TrainedEnsemble:
    """Train ``ensemble`` networks of ``spec`` on (x_train, y_train); see the module doc.

    GD/SGD/Adam: ``lr`` (> 0) and ``steps`` (≥ 1); records at the integer steps ``record`` (default:
    ~40 log-spaced).  Flow: ``time_horizon`` τ (> 0) and record times in [0, τ].  ``ntk=True`` also
    records the empirical NTK on [train; test] (ΔΘ = Θ(t) − Θ(0)).  For GD/SGD/flow the rate bound
    2/λ_max(Θ̃) of the infinite-width training NTK is computed first: ``lr`` above it warns naming
    the bound (networks at finite width may still converge, e.g. by a catapult), and ``lr`` above
    ``lr_error_factor`` × bound is an error (every mode explodes geometrically; divergence certain in
    practice)."""
    from ..nets import BatchedMLP
    from ..theory.training import StabilityWarning, sgd_schedule, validate_training_set

    t_start = time.perf_counter()
    xa, ya, xd, _ = validate_training_set(spec, x_train, y_train, x_test)
    M = check_int("ensemble", ensemble, 2)
    if algorithm not in ALGORITHMS:
        raise ParameterError("algorithm", algorithm, "'gd', 'flow', 'sgd' or 'adam'")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ParameterError("seed", seed, "an integer >= 0")
    dev, dt = resolve_device(device), resolve_dtype(dtype)
    divergence = check_positive("divergence", divergence)
    tol = None if tol is None else check_positive("tol", tol)
    NA, ND = len(xa), len(xd)
    bound = None
    if algorithm == "flow":
        if time_horizon is None:
            raise ParameterError("time_horizon", None, "a flow time τ > 0 for algorithm='flow'")
        horizon = check_positive("time_horizon", time_horizon)
        bound = stability_bound(spec, xa)
        h_max = check_positive("flow_step", flow_step) * bound / 2  # h·λ_max ≤ flow_step
    else:
        if lr is None:
            raise ParameterError("lr", None, "a learning rate > 0")
        lr = check_positive("lr", lr)
        if steps is None:
            raise ParameterError("steps", None, "an integer >= 1")
        horizon = check_int("steps", steps, 1)
        if algorithm in ("gd", "sgd"):
            bound = stability_bound(spec, xa)
            if lr >= lr_error_factor * bound:
                raise ParameterError("lr", lr, f"< {lr_error_factor:g} × 2/λ_max(Θ̃) = {lr_error_factor * bound:.6g}",
                                     f"the GD stability bound of the infinite-width training NTK is {bound:.6g}; "
                                     "divergence is certain this far above it")
            if lr >= bound:
                warnings.warn(f"lr={lr:g} is above the gradient-descent stability bound 2/λ_max(Θ̃) = {bound:.6g} of "
                              "the infinite-width training NTK: expect divergence (finite-width networks may "
                              "instead catapult to a flatter region)", StabilityWarning, stacklevel=2)
    if algorithm == "sgd":
        batch_size = NA if batch_size is None else check_int("batch_size", batch_size, 1)
        if batch_size > NA:
            raise ParameterError("batch_size", batch_size, f"1 … {NA} (the number of training inputs)")
    rec = _record_times(record, horizon, algorithm)
    if ntk and spec.output_width != 1:
        raise ParameterError("ntk", ntk, "False when output_width > 1 (the NTK is recorded for n_L = 1)")

    net = BatchedMLP(spec, device=dev, dtype=dt)
    n_par = sum(spec.width(l) * (spec.fan_in(l) + 1) for l in range(1, spec.depth + 1))
    Nall = NA + ND
    per = dt.itemsize * (n_par * (6 if algorithm in ("adam", "flow") else 3)
                         + 4 * NA * sum(spec.all_widths) + len(rec) * Nall * spec.output_width
                         + (2 * Nall * n_par + Nall * Nall if ntk else 0))  # output_ntk: N per-input gradients
    budget = available_memory(dev)
    if chunk_size is None:
        chunk = max(1, min(M, budget // max(per, 1), 4096))
    else:
        chunk = min(M, check_int("chunk_size", chunk_size, 1))
        if chunk * per > budget:
            raise ParameterError("chunk_size", chunk_size, f"<= {budget // per} (about {fmt_bytes(per)} per network, "
                                 f"{fmt_bytes(budget)} available)")
    from ..nets.rng import default_rng_block
    blk = default_rng_block(dev, M) if rng_block is None else check_int("rng_block", rng_block, 1)
    chunk = max(blk, chunk // blk * blk)

    X = torch.as_tensor(xa, dtype=dt, device=dev)
    Y = torch.as_tensor(ya, dtype=dt, device=dev)
    XD = torch.as_tensor(xd, dtype=dt, device=dev) if ND else None
    XALL = torch.as_tensor(np.concatenate([xa, xd]), dtype=dt, device=dev)
    T = len(rec)
    out_tr = np.full((M, T, NA, spec.output_width), np.nan)
    out_te = np.full((M, T, ND, spec.output_width), np.nan)
    loss_rec = np.full((M, T), np.nan)
    ntk_rec = np.full((M, T, Nall, Nall), np.nan) if ntk else None
    div_step = np.full(M, -1, dtype=np.int64)
    stop_step = np.full(M, -1, dtype=np.int64)
    batches = sgd_schedule(NA, batch_size, horizon, seed) if algorithm == "sgd" else None
    for a in range(0, M, chunk):
        b = min(M, a + chunk)
        params = net.init(b - a, seed=int(seed), start=a, total=M, rng_block=blk)
        res = _train_chunk(net, params, X, Y, XD, XALL, algorithm, lr, horizon, rec, tol, ntk, divergence,
                           batches, h_max if algorithm == "flow" else None, progress, a, M)
        out_tr[a:b], out_te[a:b], loss_rec[a:b] = res["train"], res["test"], res["loss"]
        if ntk:
            ntk_rec[a:b] = res["ntk"]
        div_step[a:b], stop_step[a:b] = res["div"], res["stop"]
    diverged = {int(i): int(div_step[i]) for i in np.flatnonzero(div_step >= 0)}
    if diverged:
        first = sorted(diverged.items(), key=lambda kv: kv[1])[:5]
        warnings.warn(f"{len(diverged)} of {M} networks diverged and were stopped (network: step caught: "
                      + ", ".join(f"{k}: {v}" for k, v in first) + (", …" if len(diverged) > 5 else "")
                      + "); statistics exclude them", RuntimeWarning, stacklevel=2)
    meta = {"seed": int(seed), "device": str(dev), "dtype": str(dt).replace("torch.", ""), "chunk_size": chunk,
            "lr_bound": bound, "tol": tol, "batch_size": batch_size, "wall_s": time.perf_counter() - t_start,
            "n_diverged": len(diverged)}
    if algorithm == "flow":
        meta.update(integrator="RK4 (fixed step, landing on record times)", h_max=h_max,
                    rk4_error_per_step=(flow_step ** 5) / 120)
    return TrainedEnsemble(algorithm=algorithm, lr=lr if lr is not None else 0.0, times=rec, train_out=out_tr,
                           test_out=out_te, loss=loss_rec, y_train=ya, x_train=xa, x_test=xd, spec=spec, ntk=ntk_rec,
                           diverged=diverged, stopped_at=stop_step, meta=meta)


@torch.no_grad()
def _train_chunk(net, params, X, Y, XD, XALL, algorithm, lr, horizon, rec, tol, want_ntk, divergence, batches,
                 h_max, progress, offset, M_total):
    dev, dt = X.device, X.dtype
    Mc = params[0]["W"].shape[0]
    rates = net.rates()
    active = torch.ones(Mc, dtype=dt, device=dev)   # 1: still training, 0: stopped (diverged or converged)
    div_step = torch.full((Mc,), -1, dtype=torch.int64, device=dev)
    stop_step = torch.full((Mc,), -1, dtype=torch.int64, device=dev)
    T = len(rec)
    out = {"train": np.full((Mc, T) + tuple(Y.shape), np.nan), "loss": np.full((Mc, T), np.nan),
           "test": np.full((Mc, T, 0 if XD is None else XD.shape[0], Y.shape[1]), np.nan)}
    if want_ntk:
        out["ntk"] = np.full((Mc, T, XALL.shape[0], XALL.shape[0]), np.nan)
    state = {"loss0": None}
    adam = None
    if algorithm == "adam":
        adam = [{k: (torch.zeros_like(v), torch.zeros_like(v)) for k, v in p.items()} for p in params]

    def grad_of(ps, x, y, mask):
        z, cache = net.forward(ps, x, keep=True)
        r = z - y
        return z, r, net.backward(ps, cache, r * mask[:, None, None])

    def watch(step, loss):
        """Stop networks that diverged or reached tol (no host sync)."""
        nonlocal active
        if state["loss0"] is None:
            state["loss0"] = loss.clone()
        bad = ~torch.isfinite(loss) | (loss > divergence * (state["loss0"] + 1))
        new_bad = bad & (div_step < 0) & (active > 0)
        div_step[new_bad] = step
        act = active > 0
        if tol is not None:
            conv = (loss <= tol) & act & ~bad
            stop_step[conv & (stop_step < 0)] = step
            act = act & ~conv
        active = (act & ~bad).to(dt)

    def record(j, z_train, loss, ps):
        good = (div_step < 0).cpu().numpy()
        zt = z_train.double().cpu().numpy()
        out["train"][:, j] = np.where(good[:, None, None], zt, np.nan)
        out["loss"][:, j] = np.where(good, loss.double().cpu().numpy(), np.nan)
        if XD is not None:
            out["test"][:, j] = np.where(good[:, None, None], net.forward(ps, XD).double().cpu().numpy(), np.nan)
        if want_ntk:
            H = output_ntk(net, ps, XALL, rates)
            out["ntk"][:, j] = np.where(good[:, None, None], H.double().cpu().numpy(), np.nan)

    j = 0
    t_last = time.perf_counter()
    if algorithm == "flow":
        tau = 0.0
        z, r, g = grad_of(params, X, Y, active)
        loss = 0.5 * r.pow(2).sum((1, 2))
        watch(0, loss)
        k = 0
        for j, t_next in enumerate(rec):
            while tau < t_next - 1e-12 * max(1.0, t_next):
                n_sub = max(1, math.ceil((t_next - tau) / h_max - 1e-9))
                h = (t_next - tau) / n_sub
                for _ in range(n_sub):
                    params = _rk4(net, params, rates, X, Y, h, active, grad_of)
                    k += 1
                tau = t_next
                z, r, _ = grad_of(params, X, Y, active)
                loss = 0.5 * r.pow(2).sum((1, 2))
                watch(k, loss)
            record(j, z, loss, params)
            if progress and time.perf_counter() - t_last > 2:
                print(f"\r  networks {offset}–{offset + Mc} of {M_total}: τ = {t_next:.3g}", end="", flush=True)
                t_last = time.perf_counter()
    else:
        rec_steps = {int(s): i for i, s in enumerate(rec)}
        steps = int(horizon)
        for s in range(steps + 1):
            # the full training loss every step (SGD too: divergence and tol are judged on it)
            if algorithm == "sgd":
                z, cache = net.forward(params, X), None
            else:
                z, cache = net.forward(params, X, keep=True)
            r = z - Y
            loss = 0.5 * r.pow(2).sum((1, 2))
            watch(s, loss)
            if s in rec_steps:
                record(rec_steps[s], z, loss, params)
            if s == steps:
                break
            if tol is not None and s % 50 == 0 and not bool(active.any()):
                # every network has stopped: later records repeat the last state
                for s2, i in rec_steps.items():
                    if s2 > s:
                        record(i, z, loss, params)
                break
            if algorithm == "sgd":
                idx = torch.as_tensor(batches[s], device=dev)
                _, _, grads = grad_of(params, X[idx], Y[idx], active)
            else:
                grads = net.backward(params, cache, r * active[:, None, None])
            if algorithm == "adam":
                _adam_step(params, grads, adam, lr, s + 1, active)
            else:
                for p, g, rt in zip(params, grads, rates):
                    for key, gv in g.items():
                        if rt[key] != 0:
                            p[key].sub_(gv, alpha=lr * rt[key])
            if progress and time.perf_counter() - t_last > 2:
                print(f"\r  networks {offset}–{offset + Mc} of {M_total}: step {s}/{steps}", end="", flush=True)
                t_last = time.perf_counter()
    if progress:
        print("", flush=True)
    out["div"] = div_step.cpu().numpy()
    out["stop"] = stop_step.cpu().numpy()
    return out


def output_ntk(net, params, x: torch.Tensor, rates=None) -> torch.Tensor:
    """Θ̂_αβ = Σ_μ rate_μ ∂z_α/∂θ_μ ∂z_β/∂θ_μ (M, N, N) for n_L = 1, from N manual backward passes
    (dout = e_α picks input α's gradient; each output depends only on its own input).  Memory
    O(M·N·P) per layer in turn, instead of the forward equation's O(M·N²·n²) (``BatchedMLP.ntk``)."""
    rates = net.rates() if rates is None else rates
    _, cache = net.forward(params, x, keep=True)
    Mc, N = params[0]["W"].shape[0], x.shape[0]
    per_input = []
    for a in range(N):
        dout = torch.zeros(Mc, N, 1, dtype=x.dtype, device=x.device)
        dout[:, a] = 1.0
        per_input.append(net.backward(params, cache, dout))
    H = torch.zeros(Mc, N, N, dtype=x.dtype, device=x.device)
    for l, rt in enumerate(rates):
        for key, r in rt.items():
            if r == 0 or key not in per_input[0][l]:
                continue
            G = torch.stack([g[l][key].reshape(Mc, -1) for g in per_input], 1)  # (M, N, P_l)
            H.add_(torch.bmm(G, G.mT), alpha=r)
    return H


def _rk4(net, params, rates, X, Y, h, active, grad_of):
    """One classical RK4 step of dθ/dτ = −rate·∂L/∂θ (masked networks do not move)."""
    def velocity(ps):
        _, _, g = grad_of(ps, X, Y, active)
        return [{k: -rt[k] * gv for k, gv in gl.items()} for gl, rt in zip(g, rates)]

    def shift(ps, v, c):
        return [{k: p[k] + c * vl[k] for k in p} for p, vl in zip(ps, v)]

    k1 = velocity(params)
    k2 = velocity(shift(params, k1, h / 2))
    k3 = velocity(shift(params, k2, h / 2))
    k4 = velocity(shift(params, k3, h))
    return [{k: p[k] + (h / 6) * (a[k] + 2 * b[k] + 2 * c[k] + d[k]) for k in p}
            for p, a, b, c, d in zip(params, k1, k2, k3, k4)]


def _adam_step(params, grads, state, lr, t, active):
    b1, b2 = ADAM_BETAS
    c1, c2 = 1 - b1**t, 1 - b2**t
    for p, g, st in zip(params, grads, state):
        for k, gv in g.items():
            m, v = st[k]
            m.mul_(b1).add_(gv, alpha=1 - b1)
            v.mul_(b2).addcmul_(gv, gv, value=1 - b2)
            upd = (m / c1) / ((v / c2).sqrt() + ADAM_EPS)
            mask = active.view(-1, *([1] * (upd.dim() - 1)))
            p[k].sub_(upd * mask, alpha=lr)
