"""Vectorised SGLD / preconditioned SGLD / MALA on any ``nn.Module``.

Target (conventions in :mod:`deepeft.conventions`, ``slt.md`` §1)::

    p(w) ∝ exp(−nβ·L_n(w) − (γ/2)‖w − c‖²),        c = w* (the model's weights) by default

SGLD (Welling & Teh 2011, with Gaussian localisation as in Lau et al. 2023, "The local learning
coefficient", eq. for the SGLD update)::

    w ← w − (ε/2)[nβ·∇L_batch(w) + γ(w − c)] + N(0, ε I)

RMSProp-preconditioned SGLD (Li, Chen, Carlson, Carin 2016, "pSGLD", eq. 4, without the Γ
correction term)::

    V ← αV + (1−α)(nβ∇L_batch)²,   G = 1/(√V + δ),
    w ← w − (ε/2) G ⊙ [nβ∇L_batch + γ(w − c)] + N(0, ε G)

MALA (Roberts & Tweedie 1996): the SGLD proposal on the *full-data* potential
U(w) = nβ·L_n(w) + (γ/2)‖w − c‖², accepted with the Metropolis–Hastings ratio; exact for the target
at any ε (used for small models and as a bias-free reference).

Vectorisation: all chains are one flat parameter tensor of shape (chains, P); the per-chain losses
are ``torch.func.vmap(functional_call(model, ...))`` over it and one reverse pass of the summed
losses gives every chain's gradient (chains are independent, so the gradient of the sum with
respect to chain c's row is chain c's gradient).  No Python loop over chains.

Draws and burn-in.  w_0 is the initial point (w* unless ``init`` is given); w_s is the state after
s updates.  Draw j is the state ``w_{B + 1 + j·k}`` with B = ``num_burnin_steps`` and
k = ``num_steps_bw_draws``: burn-in states and the initial point are never draws.  The recorded
loss of a draw is, by default, the minibatch loss computed in the same forward pass that gives the
gradient (an unbiased estimate of L_n at that state because the batch is drawn independently of
the state); ``loss_eval='full'`` evaluates L_n on all data at each draw instead, and
``'two_batch'`` adds an independent second minibatch (so Var[L_n] can be estimated without the
minibatch noise as the covariance of the two).

Divergence.  A chain is stopped and reported (never averaged silently) when its loss, gradient or
parameters become NaN/Inf, when ‖w − c‖² exceeds ``divergence_radius_factor``·P/γ (P/γ is the mean
squared radius of the localising Gaussian alone), or — checked before sampling — when
ε·(nβ·h_max + γ) ≥ 4 with h_max the top Hessian eigenvalue of L_n at w* (the exact stability bound
of SGLD on a quadratic: u ← (1 − εa/2)u + noise is stable iff εa < 4).
"""
from __future__ import annotations

import copy
import fnmatch
import math
import os
import signal
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap

from ..core.errors import AccuracyWarning, DivergenceError, ParameterError, check_int, check_nonnegative, check_positive
from ._data import LOSS_GRADS, InMemoryData, LoaderData, resolve_device, resolve_loss, split_data


class StepSizeWarning(AccuracyWarning):
    """The step size is large enough to bias the estimate noticeably (or is close to the stability bound)."""


class ConvergenceWarning(AccuracyWarning):
    """Chains disagree (R-hat > 1.1) or the loss trace is not flat (still burning in)."""


class DivergenceWarning(AccuracyWarning):
    """One or more chains diverged and were stopped; estimates use the remaining chains."""


SAMPLERS = ("sgld", "mala", "gibbs")
LOSS_EVALS = ("batch", "full", "two_batch")


# ------------------------------------------------------------------------------ parameter layout
@dataclass
class ParamLayout:
    """Names/shapes/offsets of the sampled parameters inside the flat (chains, P) tensor."""

    names: list[str]
    shapes: list[torch.Size]
    offsets: list[int]
    numels: list[int]
    frozen: dict[str, torch.Tensor]  # frozen params + buffers, shared by all chains

    def __post_init__(self):
        self.index = {n: i for i, n in enumerate(self.names)}

    @property
    def P(self) -> int:
        return int(sum(self.numels))

    def views(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """(C, P) -> {name: (C, *shape)} views (or (P,) -> {name: shape})."""
        lead = flat.shape[:-1]
        return {
            n: flat[..., o:o + k].reshape(*lead, *s)
            for n, s, o, k in zip(self.names, self.shapes, self.offsets, self.numels)
        }

    def flatten(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([tensors[n].detach().reshape(-1) for n in self.names])

    def load_into(self, model: nn.Module, flat: torch.Tensor) -> nn.Module:
        """Copy a flat (P,) vector into ``model``'s sampled parameters (in place)."""
        params = dict(model.named_parameters())
        with torch.no_grad():
            for n, v in self.views(flat).items():
                params[n].copy_(v)
        return model


def select_parameters(model: nn.Module, params: Any = None) -> ParamLayout:
    """Choose the sampled parameters: all that require grad (default), names / glob patterns, or a predicate.

    Everything else (parameters not selected, parameters with requires_grad=False, buffers) is
    frozen at its current value — the weight-restricted posterior of the refined LLC.
    """
    if not isinstance(model, nn.Module):
        raise ParameterError("model", type(model).__name__, "a torch.nn.Module")
    named = list(model.named_parameters())
    trainable = [(n, p) for n, p in named if p.requires_grad]
    if not trainable:
        raise ParameterError("model", f"{type(model).__name__} with {len(named)} parameters, none requiring grad",
                             "a model with at least one parameter with requires_grad=True")
    for n, p in named:
        if p.is_floating_point() and not bool(torch.isfinite(p).all()):
            raise ParameterError(f"model parameter {n!r}", "contains NaN/Inf", "finite values only")
    if params is None:
        chosen = trainable
    elif callable(params):
        chosen = [(n, p) for n, p in trainable if params(n, p)]
    else:
        pats = [params] if isinstance(params, str) else list(params)
        chosen = [(n, p) for n, p in trainable if any(n == q or fnmatch.fnmatchcase(n, q) for q in pats)]
    if not chosen:
        raise ParameterError("params", params, f"names/patterns matching at least one trainable parameter of {[n for n, _ in trainable]}")
    chosen_names = {n for n, _ in chosen}
    frozen = {n: p.detach() for n, p in named if n not in chosen_names}
    frozen.update({n: b for n, b in model.named_buffers()})
    names, shapes, numels, offsets, o = [], [], [], [], 0
    for n, p in chosen:
        names.append(n)
        shapes.append(p.shape)
        numels.append(p.numel())
        offsets.append(o)
        o += p.numel()
    return ParamLayout(names, shapes, offsets, numels, frozen)


# ------------------------------------------------------------------------------------- results
@dataclass
class SampleResult:
    """Everything a run produced.  Arrays are numpy, chains first.

    ``loss_trace`` (chains × draws) holds the recorded loss of each draw (see ``loss_eval``);
    after a chain diverged its entries are NaN.  ``step_loss`` (chains × steps) is the minibatch
    loss at every state including burn-in (for trace plots and calibration).
    """

    loss_trace: np.ndarray
    step_loss: np.ndarray
    distance_trace: np.ndarray
    init_loss: float
    n: int
    nbeta: float | np.ndarray
    localization: float
    lr: np.ndarray
    sampler: str
    loss_eval: str
    num_burnin_steps: int
    num_steps_bw_draws: int
    diverged: np.ndarray
    divergence_step: np.ndarray
    divergence_reason: list
    mala_acceptance: np.ndarray | None = None
    pair_loss_trace: np.ndarray | None = None
    observables: np.ndarray | None = None
    param_draws: np.ndarray | None = None
    final_flat: torch.Tensor | None = None
    layout: ParamLayout | None = None
    curvature: float | None = None
    wall_time: float = 0.0
    warnings: list = field(default_factory=list)
    config: dict = field(default_factory=dict)

    @property
    def num_chains(self) -> int:
        return int(self.loss_trace.shape[0])

    @property
    def num_draws(self) -> int:
        return int(self.loss_trace.shape[1])

    @property
    def healthy(self) -> np.ndarray:
        return ~self.diverged

    def final_models(self, model: nn.Module, chains: Sequence[int] | None = None) -> list[nn.Module]:
        """Deep copies of ``model`` carrying each chain's final sampled weights (diverged chains skipped)."""
        if self.final_flat is None or self.layout is None:
            raise ParameterError("final_flat", None, "a SampleResult produced by sample() (final state kept)")
        idx = [c for c in (range(self.num_chains) if chains is None else chains) if not self.diverged[c]]
        out = []
        for c in idx:
            m = copy.deepcopy(model)
            self.layout.load_into(m, self.final_flat[c].to(next(m.parameters()).device))
            out.append(m)
        return out


# --------------------------------------------------------------------------------- validation
def _per_chain_positive(name: str, value: Any, C: int) -> list[float]:
    """A positive number, or one positive number per chain, as a list of length C."""
    if isinstance(value, (list, tuple, np.ndarray, torch.Tensor)):
        vals = [float(v) for v in (value.tolist() if hasattr(value, "tolist") else value)]
        if len(vals) != C:
            raise ParameterError(name, value, f"a positive number or a sequence of num_chains={C} positive numbers")
        for v in vals:
            check_positive(name, v)
        return vals
    return [check_positive(name, value)] * C


#: the automatic burn-in covers this many localisation relaxation times 1/(ε·γ) …
BURNIN_RELAXATION_TIMES = 3
#: … but at most this many times the sampling span num_draws·num_steps_bw_draws (then the
#: relaxation-time warning of estimate_llc says that it was not enough)
BURNIN_MAX_SPANS = 10


def auto_burnin(sampler: str, lrs: Sequence[float], gamma: float, D: int, K: int) -> int:
    """``num_burnin_steps='auto'``: 3/(ε_min·γ) steps — three relaxation times of the directions that
    only the localisation holds, which near a degenerate w* set how stiff the others are — capped at
    10× the sampling span D·K; 0 when γ = 0; a quarter of the span for Gibbs sweeps (exact
    conditionals: they mix in a few sweeps)."""
    span = D * K
    if sampler == "gibbs":
        return max(1, span // 4)
    if gamma <= 0:
        return 0
    return int(min(math.ceil(BURNIN_RELAXATION_TIMES / (min(lrs) * gamma)), BURNIN_MAX_SPANS * span))


def default_nbeta(n: int) -> float:
    """nβ = n / log n (β = 1/log n, Watanabe's WBIC temperature)."""
    if n < 2:
        raise ParameterError("n", n, ">= 2 for the default nbeta = n/log(n); pass nbeta explicitly")
    return n / math.log(n)


from ..nets.module import BatchedModule  # noqa: E402  (the batched engine lives in deepeft.nets)
from ..nets.module import activation_derivative as _activation_derivative  # noqa: E402,F401
from ..nets.module import axpy as _axpy  # noqa: E402
from ..nets.module import sequential_plan as _sequential_plan  # noqa: E402,F401


class _Engine(BatchedModule):
    """:class:`deepeft.nets.BatchedModule` with the closed-form gradients of the built-in losses."""

    loss_grads = LOSS_GRADS


def _check_scalar_loss(engine: _Engine, flat0: torch.Tensor, x, y):
    with torch.no_grad():
        out = engine.single(engine.layout.views(flat0), x, y)
    if not isinstance(out, torch.Tensor) or out.dim() != 0:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ParameterError("loss_fn", f"returned {shape}", "a function returning a scalar (0-dim) tensor: the mean loss of the batch")
    if not bool(torch.isfinite(out)):
        raise ParameterError("loss at the initial weights", float(out), "a finite value (check the data, the model and loss_fn)")


def top_hessian_eigenvalue(engine: _Engine, flat0: torch.Tensor, x, y, iters: int = 40, seed: int = 0,
                           rtol: float = 1e-3) -> float:
    """|largest| Hessian eigenvalue of the loss at ``flat0`` by the Lanczos method with full
    reorthogonalisation (Golub & Van Loan, Matrix Computations §10.1) on Hessian-vector products:
    stopped when the Ritz residual of the extreme Ritz value is below ``rtol`` relatively, or after
    ``iters`` products (power iteration needed > 30 and still came out 1.7 % low on a DLN)."""
    w = flat0.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        L = engine.single(engine.layout.views(w), x, y)
        (g,) = torch.autograd.grad(L, w, create_graph=True)
        if not g.requires_grad:  # loss is linear in w (or independent of it)
            return 0.0

        def hvp(v):
            # H v as the gradient of the scalar g·v (no grad_outputs: passing a tensor there makes torch
            # import its symbolic-shape machinery, ≈ 0.4 s once per process)
            (hv,) = torch.autograd.grad(torch.dot(g, v), w, retain_graph=True, allow_unused=True)
            return torch.zeros_like(v) if hv is None else hv.detach()

        # the Lanczos vectors live in float64; a product whose new direction is at the round-off level
        # of the model's dtype means the Krylov space is exhausted (low-rank Hessians at degenerate w*)
        breakdown = 1e3 * torch.finfo(w.dtype).eps
        gen = torch.Generator(device=w.device).manual_seed(seed)
        q = torch.randn(w.shape, generator=gen, device=w.device, dtype=torch.float64)
        q /= q.norm()
        Q: list[torch.Tensor] = []
        alpha: list[float] = []
        beta: list[float] = []
        theta = 0.0
        for j in range(min(iters, w.numel())):
            v = hvp(q.to(w.dtype)).to(torch.float64)
            a = float(torch.dot(q, v))
            if not math.isfinite(a):
                return float("inf")
            Q.append(q)
            alpha.append(a)
            Qm = torch.stack(Q)
            scale = float(v.norm())
            for _ in range(2):  # full reorthogonalisation, twice ("twice is enough")
                v = v - Qm.T @ (Qm @ v)
            b = float(v.norm())
            T = np.diag(alpha) + np.diag(beta, 1) + np.diag(beta, -1)
            evals, evecs = np.linalg.eigh(T)
            k = int(np.argmax(np.abs(evals)))
            theta = float(evals[k])
            if b * abs(evecs[-1, k]) <= rtol * abs(theta) or b <= breakdown * max(scale, abs(theta)):
                break
            beta.append(b)
            q = v / b
    return abs(theta)


# ---------------------------------------------------------------------------------------- sample
def top_curvature(model: nn.Module, data: Any, loss_fn: Any, *, params: Any = None, seed: int = 0,
                  localization: float = 0.0, num_points: int = 0) -> float:
    """Top Hessian eigenvalue of L_n (on the first ≤ 2048 samples, as the sampler's stability check) at
    the model's weights w* and, with ``num_points`` > 0 and γ = ``localization`` > 0, the largest of it
    and its values at ``num_points`` draws from the localisation Gaussian N(w*, I/γ) — the curvature a
    chain meets, which at a singular w* (zero Hessian) is the only finite scale."""
    layout = select_parameters(model, params)
    engine = _Engine(model, layout, resolve_loss(loss_fn))
    dev = next(model.parameters()).device
    x, y, loader = split_data(data)
    if loader is None:
        xs, ys = x[:2048].to(dev), None if y is None else y[:2048].to(dev)
    else:
        xs, ys = LoaderData(loader, dev).subsample(2048)
    flat0 = layout.flatten(dict(model.named_parameters())).to(dev)
    h = top_hessian_eigenvalue(engine, flat0, xs, ys, seed=seed)
    if num_points > 0 and localization > 0:
        gen = torch.Generator(device=dev).manual_seed(int(seed) + 1)
        for _ in range(num_points):
            w = flat0 + torch.randn(flat0.shape, generator=gen, device=dev, dtype=flat0.dtype) / math.sqrt(localization)
            h = max(h, top_hessian_eigenvalue(engine, w, xs, ys, seed=seed))
    return h


def sample(
    model: nn.Module,
    data: Any,
    loss_fn: Any = "mse",
    *,
    sampler: str = "sgld",
    lr: float | Sequence[float] = 1e-4,
    localization: float = 100.0,
    nbeta: float | None = None,
    num_chains: int = 4,
    num_draws: int = 200,
    num_burnin_steps: int | str = "auto",
    num_steps_bw_draws: int = 1,
    batch_size: int | None = None,
    n: int | None = None,
    params: Any = None,
    center: Any = None,
    init: Any = None,
    precondition: str | None = None,
    rmsprop_alpha: float = 0.99,
    rmsprop_eps: float = 1e-8,
    loss_eval: str = "batch",
    init_loss_batches: int | None = None,
    observable: Callable | None = None,
    probe: Any = None,
    record_params: bool = False,
    mala_every: int = 0,
    check_stability: bool = True,
    divergence_radius_factor: float = 1e4,
    on_divergence: str = "warn",
    chunk_size: int = 4096,
    seed: int = 0,
    device: Any = "cpu",
    progress: bool = False,
    keep_final: bool = True,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 1000,
) -> SampleResult:
    """Run vectorised chains on the localised tempered posterior of ``model`` (see module docstring).

    Parameters (devinterp/canonical names): ``lr`` = ε (scalar or one per chain),
    ``localization`` = γ ≥ 0, ``nbeta`` = nβ > 0 (default n/log n), ``num_chains``,
    ``num_draws``, ``num_burnin_steps`` (default ``'auto'``: 3/(ε·γ), three localisation
    relaxation times, at most 10·num_draws·num_steps_bw_draws; see :func:`auto_burnin`),
    ``num_steps_bw_draws``, ``batch_size`` (default
    min(n, 512); ignored by MALA, which uses all data).  ``params`` restricts sampling to some
    parameters (names, glob patterns or a predicate); the rest stay frozen.  ``center`` is the
    localisation centre c (default: w*, the current weights; ``'zero'`` or a dict name->tensor).
    ``init`` is the start of every chain (default w*; ``'center'``, a dict, or a flat tensor of
    shape (P,) or (chains, P)).  ``precondition='rmsprop'`` enables pSGLD.  ``observable``,
    evaluated at each draw on ``probe`` data, is ``f(output, target) -> tensor[k]`` (vmapped over
    chains).  ``mala_every=k>0`` computes, every k-th SGLD step, the Metropolis–Hastings acceptance
    probability of the SGLD proposal on that step's minibatch (devinterp's MALA diagnostic;
    costs one extra forward/backward on those steps).

    ``sampler='gibbs'`` (deep linear networks only: an ``nn.Sequential`` of bias-free ``nn.Linear``
    layers, loss ``'gaussian_nll'`` or ``'mse'``, in-memory data, γ > 0) replaces Langevin steps by
    exact blocked Gibbs sweeps on the full-data posterior — every factor redrawn from its Gaussian
    conditional (:mod:`deepeft.bayes.dln_gibbs`) — so it mixes whatever the conditioning; one sweep
    counts as one step, ``lr`` and ``batch_size`` are not used and every recorded loss is the exact L_n.

    ``checkpoint="run.ckpt"`` saves the whole loop state every ``checkpoint_every`` steps, on
    Ctrl-C (then re-raises) and at the end; the same call with the same path resumes from it
    (bit-identical with in-memory data; :mod:`deepeft.bayes.checkpoint`).

    The initial loss L_n(w*) is computed on *all* in-memory data (chunked), or averaged over
    the DataLoader's batches (all of them, or the first ``init_loss_batches``), never from one
    batch.  Runs are exactly reproducible on CPU for a given ``seed`` (all randomness — noise and
    minibatch order — comes from one seeded ``torch.Generator``).
    """
    t_start = time.perf_counter()
    if sampler not in SAMPLERS:
        raise ParameterError("sampler", sampler, f"one of {SAMPLERS}")
    if loss_eval not in LOSS_EVALS:
        raise ParameterError("loss_eval", loss_eval, f"one of {LOSS_EVALS}")
    if precondition not in (None, "none", "rmsprop"):
        raise ParameterError("precondition", precondition, "None or 'rmsprop'")
    if on_divergence not in ("warn", "raise"):
        raise ParameterError("on_divergence", on_divergence, "'warn' or 'raise'")
    rms = precondition == "rmsprop"
    if rms and sampler == "mala":
        raise ParameterError("precondition", precondition, "None when sampler='mala'")
    C = check_int("num_chains", num_chains, 1)
    D = check_int("num_draws", num_draws, 1)
    K = check_int("num_steps_bw_draws", num_steps_bw_draws, 1)
    gamma = check_nonnegative("localization", localization)
    lrs = _per_chain_positive("lr", lr, C)
    if isinstance(num_burnin_steps, str) and num_burnin_steps == "auto":
        B = auto_burnin(sampler, lrs, gamma, D, K)
    else:
        B = check_int("num_burnin_steps", num_burnin_steps, 0)
    mala_every = check_int("mala_every", mala_every, 0)
    chunk_size = check_int("chunk_size", chunk_size, 1)
    checkpoint_every = check_int("checkpoint_every", checkpoint_every, 1)
    if checkpoint is not None and not isinstance(checkpoint, (str, os.PathLike)):
        raise ParameterError("checkpoint", type(checkpoint).__name__, "None or a file path")
    check_positive("divergence_radius_factor", divergence_radius_factor)
    if rms:
        if not 0.0 <= float(rmsprop_alpha) < 1.0:
            raise ParameterError("rmsprop_alpha", rmsprop_alpha, "0 <= alpha < 1")
        check_positive("rmsprop_eps", rmsprop_eps)
    dev = resolve_device(device)
    loss = resolve_loss(loss_fn)
    layout = select_parameters(model, params)
    if sampler == "gibbs":  # exact blocked Gibbs for deep linear networks (dln_gibbs.py)
        from .dln_gibbs import gibbs_sample

        forbidden = {k: (v, a) for k, v, a, bad in (
            ("precondition", precondition, "None", rms), ("mala_every", mala_every, "0", mala_every > 0),
            ("observable", "a function", "None", observable is not None),
            ("loss_eval", loss_eval, "'batch' or 'full' (every recorded loss is the exact L_n)", loss_eval == "two_batch"),
            ("checkpoint", str(checkpoint), "None (Gibbs sweeps are cheap: rerun)", checkpoint is not None),
        ) if bad}
        return gibbs_sample(model=model, data=data, loss=loss, layout=layout, nbeta=nbeta, gamma=gamma, C=C, D=D, B=B,
                            K=K, center=center, init=init, seed=seed, dev=dev, progress=progress,
                            record_params=record_params, keep_final=keep_final, t_start=t_start, forbidden=forbidden)
    was_training = model.training
    model.eval()  # dropout/batch-norm statistics must not vary between chains or steps
    try:
        return _sample_impl(**locals())
    finally:
        model.train(was_training)


def _sample_impl(*, model, data, loss, layout, sampler, lrs, gamma, nbeta, C, D, B, K, batch_size, n, center,
                 init, rms, rmsprop_alpha, rmsprop_eps, loss_eval, init_loss_batches, observable, probe,
                 record_params, mala_every, check_stability, divergence_radius_factor, on_divergence,
                 chunk_size, seed, dev, progress, keep_final, t_start, checkpoint, checkpoint_every,
                 **_unused) -> SampleResult:
    model_dev = next(model.parameters()).device
    if model_dev != dev:
        model.to(dev)
        layout.frozen = {k: v.to(dev) for k, v in layout.frozen.items()}
    x, y, loader = split_data(data)
    gen = torch.Generator(device=dev).manual_seed(int(seed))
    if loader is None:
        nn_ = int(x.shape[0])
        if n is not None and int(n) != nn_:
            raise ParameterError("n", n, f"omitted or equal to the number of samples ({nn_}) for in-memory data")
        bs = min(nn_, 512) if batch_size is None else check_int("batch_size", batch_size, 1)
        src = InMemoryData(x, y, bs, C, dev, gen)
    else:
        if n is not None:
            check_int("n", n, 1)
        src = LoaderData(loader, dev, n)
        if sampler == "mala":
            raise ParameterError("data", "a DataLoader", "in-memory tensors when sampler='mala' (MALA needs the exact full-data loss)")
    n = src.n
    if nbeta is None:
        nb_list = [default_nbeta(n)] * C
    else:
        nb_list = _per_chain_positive("nbeta", nbeta, C)
    nb_uniform = all(v == nb_list[0] for v in nb_list)
    nb = nb_list[0] if nb_uniform else None
    params_now = dict(model.named_parameters())
    flat_star = layout.flatten(params_now).to(dev)
    dtype = flat_star.dtype
    P = layout.P
    engine = _Engine(model, layout, loss)

    # centre and initial state
    if center is None:
        c = flat_star.clone()
    elif isinstance(center, str) and center == "zero":
        c = torch.zeros_like(flat_star)
    elif isinstance(center, dict):
        c = layout.flatten({k: torch.as_tensor(v) for k, v in center.items()}).to(dev, dtype)
    elif isinstance(center, torch.Tensor) and center.shape == (P,):
        c = center.to(dev, dtype)
    else:
        raise ParameterError("center", type(center).__name__, "None (w*), 'zero', a dict name->tensor, or a tensor of shape (P,)")
    if not bool(torch.isfinite(c).all()):
        raise ParameterError("center", "contains NaN/Inf", "finite values only")
    if init is None:
        flat = flat_star.expand(C, P).clone()
    elif isinstance(init, str) and init == "center":
        flat = c.expand(C, P).clone()
    elif isinstance(init, dict):
        flat = layout.flatten({k: torch.as_tensor(v) for k, v in init.items()}).to(dev, dtype).expand(C, P).clone()
    elif isinstance(init, torch.Tensor) and init.shape in ((P,), (C, P)):
        flat = init.to(dev, dtype).expand(C, P).clone()
    else:
        raise ParameterError("init", type(init).__name__, f"None (w*), 'center', a dict, or a tensor of shape ({P},) or ({C}, {P})")
    if not bool(torch.isfinite(flat).all()):
        raise ParameterError("init", "contains NaN/Inf", "finite values only")

    # validate the loss on a small batch, then the initial loss on all data
    xs, ys = src.subsample(min(64, n))
    _check_scalar_loss(engine, flat_star, xs, ys)
    with torch.no_grad():
        if loader is None:
            init_loss = float(engine.full_loss(flat_star[None], src, chunk_size)[0])
        else:
            tot, m = 0.0, 0
            for xb, yb, w in src.chunks(chunk_size, init_loss_batches):
                tot += float(engine.single(layout.views(flat_star), xb, yb)) * w
                m += w
            init_loss = tot / m
    if not math.isfinite(init_loss):
        raise ParameterError("loss at w*", init_loss, "a finite value")

    lr_t = torch.tensor(lrs, device=dev, dtype=dtype)[:, None]
    nb_t = torch.tensor(nb_list, device=dev, dtype=dtype)[:, None] if not nb_uniform else nb
    warn_msgs: list[str] = []
    alive = torch.ones(C, dtype=torch.bool, device=dev)
    div_step = np.full(C, -1, dtype=np.int64)
    div_reason = [""] * C

    # pre-flight stability at w*: eps * (nbeta * h_max + gamma) < 4
    curvature = None
    if check_stability and not rms and sampler == "sgld":
        xh, yh = src.subsample(min(n, 2048))
        try:
            curvature = top_hessian_eigenvalue(engine, flat_star, xh, yh, seed=int(seed))
        except RuntimeError as exc:  # e.g. a module without double-backward support
            warn_msgs.append(f"stability pre-check skipped (Hessian-vector products failed: {exc})")
            curvature = None
        if curvature is not None:
            a_maxs = [nb_list[ci] * curvature + gamma for ci in range(C)]
            for ci in range(C):
                ea = lrs[ci] * a_maxs[ci]
                if ea >= 4.0:
                    alive[ci] = False
                    div_step[ci] = 0
                    div_reason[ci] = (f"lr·(nbeta·h_max + localization) = {lrs[ci]:.3g}·{a_maxs[ci]:.3g} = {ea:.3g} >= 4: "
                                      f"beyond the SGLD stability bound at w* (h_max = {curvature:.3g}, top Hessian eigenvalue of L_n)")
            ea_ok = [(lrs[ci] * a_maxs[ci], a_maxs[ci]) for ci in range(C) if alive[ci]]
            if ea_ok and max(ea_ok)[0] > 0.4:
                ea, a_max = max(ea_ok)
                msg = (f"lr·(nbeta·h_max + localization) = {ea:.3g} at w*: the stiffest direction's variance is "
                       f"inflated by 1/(1 − εa/4) = {1 / (1 - ea / 4):.3g} (quadratic approximation); "
                       f"use a smaller lr (bound: 4/{a_max:.3g} = {4 / a_max:.3g})")
                warn_msgs.append(msg)
                warnings.warn(msg, StepSizeWarning, stacklevel=3)
    if not bool(alive.any()):
        raise DivergenceError("all chains are beyond the stability bound before sampling: " + div_reason[0])
    if on_divergence == "raise" and not bool(alive.all()):
        raise DivergenceError(next(r for r in div_reason if r))
    flat = torch.where(alive[:, None], flat, c)

    # radius bound for the runaway detector
    radius2 = divergence_radius_factor * (P / gamma if gamma > 0 else float("inf"))
    radius2 = max(radius2, 100.0 * float(((flat - c) ** 2).sum(1).max()))

    # probe data for observables
    if observable is not None:
        if probe is None:
            px, py = src.subsample(min(n, 1024))
        else:
            px, py, pl = split_data(probe)
            if pl is not None:
                raise ParameterError("probe", "a DataLoader", "in-memory tensors (x, y)")
            px, py = px.to(dev), (None if py is None else py.to(dev))

        def obs_single(pdict):
            out = functional_call(model, (pdict, layout.frozen), (px,))
            return torch.as_tensor(observable(out, py)).reshape(-1)

        obs_vm = vmap(obs_single)

        def eval_obs(fl):
            with torch.no_grad():
                try:
                    return obs_vm(layout.views(fl))
                except Exception:  # observable not vmappable: fall back to chains one by one
                    return torch.stack([obs_single(layout.views(fl[i])) for i in range(fl.shape[0])])

    # bookkeeping
    last_draw = B + 1 + (D - 1) * K
    total = last_draw + 1
    draw_of_step = {}
    for j in range(D):
        draw_of_step[B + 1 + j * K] = j
    pair_trace = torch.full((C, D), float("nan"), dtype=dtype) if loss_eval == "two_batch" else None
    # per-draw values stay on the device during the run (no per-draw masking or transfer); chains
    # that diverge are masked from their divergence step on when the run ends
    loss_dev: list = []  # per draw: (C,) losses and ‖w − c‖², stacked when the run ends
    dist_dev: list = []
    draw_steps = np.array(sorted(draw_of_step), dtype=np.int64)
    obs_list: list = [None] * D if observable is not None else []
    pdraws = torch.full((C, D, P), float("nan"), dtype=dtype) if record_params else None
    acc_sum = torch.zeros(C, dtype=dtype, device=dev)
    acc_cnt = 0
    V = None
    sqrt_lr = lr_t.sqrt()
    half_lr = 0.5 * lr_t
    coef_g = -(half_lr * nb_t)                     # (C, 1)
    coef_w = 1.0 - half_lr * gamma                 # (C, 1)
    c_term = (half_lr * gamma) * c                 # (C, P), constant over steps
    # one ε and one nβ for every chain (the usual case): scalar coefficients, else one per chain
    uniform = nb_uniform and all(v == lrs[0] for v in lrs)
    s_lr = math.sqrt(lrs[0])
    c_g = -0.5 * lrs[0] * nb if uniform else coef_g
    c_w = 1.0 - 0.5 * lrs[0] * gamma if uniform else coef_w

    ck_fp = ck_cfg = ck_state = None
    if checkpoint is not None:
        from . import checkpoint as ckpt

        ck_cfg = dict(sampler=sampler, lr=lrs, localization=gamma, nbeta=nb_list, num_chains=C, num_draws=D,
                      num_burnin_steps=B, num_steps_bw_draws=K, batch_size=getattr(src, "b", None), n=n,
                      loss_eval=loss_eval, precondition="rmsprop" if rms else None,
                      rmsprop=[rmsprop_alpha, rmsprop_eps] if rms else None, mala_every=mala_every, seed=int(seed),
                      params=list(layout.names), record_params=bool(record_params), observable=observable is not None,
                      loss=getattr(loss, "__qualname__", type(loss).__name__), dtype=str(dtype), device=dev.type)
        ck_fp = ckpt.fingerprint(ck_cfg, ckpt.tensor_digest(flat, c, x, y))
        ck_state = ckpt.load(checkpoint, ck_fp, ck_cfg)

    pbar = None
    if progress:
        from tqdm.auto import tqdm

        pbar = tqdm(total=total, desc=f"{sampler} {C} chains", leave=False)

    def stop(mask: torch.Tensor, step: int, reason: str):
        nonlocal alive
        newly = mask & alive
        if not bool(newly.any()):
            return
        for ci in torch.nonzero(newly).flatten().tolist():
            div_step[ci] = step
            div_reason[ci] = reason
        alive = alive & ~newly
        if on_divergence == "raise":
            raise DivergenceError(f"chain(s) {torch.nonzero(newly).flatten().tolist()} diverged at step {step}: {reason}")
        if not bool(alive.any()):
            raise DivergenceError(f"all {C} chains diverged (last at step {step}: {reason}); lower lr or raise localization")

    # MALA state: full-data potential and its gradient at the current state
    Lcur = gcur = None
    if sampler == "mala" and ck_state is None:
        Lcur, gcur = engine.full_loss(flat, src, chunk_size, grad=True)

    step_loss_dev: list = []  # per step: (C,) minibatch losses
    all_alive = bool(alive.all())
    s0 = 0
    if ck_state is not None:  # resume: the loop state at the top of step s0
        s0 = int(ck_state["step"])
        flat = ck_state["flat"].to(dev)
        gen.set_state(ck_state["gen"])
        src.load_state(ck_state["src"])

        def rows(t):
            return [] if t is None else list(t.to(dev).unbind(0))

        step_loss_dev, loss_dev, dist_dev = rows(ck_state["step_loss"]), rows(ck_state["loss"]), rows(ck_state["dist"])
        alive = ck_state["alive"].to(dev)
        div_step[:] = ck_state["div_step"]
        div_reason[:] = ck_state["div_reason"]
        all_alive = bool(ck_state["all_alive"])
        acc_sum, acc_cnt = ck_state["acc_sum"].to(dev), int(ck_state["acc_cnt"])
        V = None if ck_state["V"] is None else ck_state["V"].to(dev)
        if sampler == "mala":
            Lcur, gcur = ck_state["Lcur"].to(dev), ck_state["gcur"].to(dev)
        pair_trace, obs_list, pdraws = ck_state["pair_trace"], ck_state["obs_list"], ck_state["pdraws"]
        if pbar is not None:
            pbar.update(s0)

    def snapshot(step: int) -> dict:
        return dict(fingerprint=ck_fp, config=ck_cfg, step=step, flat=flat, gen=gen.get_state(), src=src.state(),
                    step_loss=torch.stack(step_loss_dev) if step_loss_dev else None,
                    loss=torch.stack(loss_dev) if loss_dev else None, dist=torch.stack(dist_dev) if dist_dev else None,
                    alive=alive, div_step=div_step.copy(), div_reason=list(div_reason), all_alive=all_alive,
                    acc_sum=acc_sum, acc_cnt=acc_cnt, V=V, Lcur=Lcur, gcur=gcur, pair_trace=pair_trace,
                    obs_list=obs_list, pdraws=pdraws)

    # with a checkpoint, Ctrl-C (SIGINT) is taken at the next step boundary: saved, then re-raised
    interrupted = False
    prev_sigint = None
    if checkpoint is not None and threading.current_thread() is threading.main_thread():
        def on_sigint(signum, frame):
            nonlocal interrupted
            interrupted = True

        prev_sigint = signal.signal(signal.SIGINT, on_sigint)

    check_every = 10  # health checks (finite loss, runaway) every 10 steps: one host sync per block
    d2_cur = None
    # plain SGLD writes each new state into the other of two buffers, whose parameter views are
    # built once (no per-step allocation of the state or of its views)
    plain = not (rms or sampler == "mala" or mala_every)
    if plain:
        bufs = (flat, torch.empty_like(flat)) if s0 % 2 == 0 else (torch.empty_like(flat), flat)
        buf_views = tuple(layout.views(bf) for bf in bufs)
    try:
        for s in range(s0, total):
            if checkpoint is not None and s > s0 and (interrupted or s % checkpoint_every == 0 or s == last_draw):
                ckpt.save(checkpoint, snapshot(s))
            if interrupted:
                raise KeyboardInterrupt(f"interrupted at step {s} of {total}; "
                                        + (f"the state is saved in {checkpoint}: run the same call again to resume"
                                           if s > s0 else f"nothing new to save in {checkpoint}"))
            if sampler == "sgld":
                xb, yb, xdim = src.next_batch()
                L, g = engine.loss_and_grad(flat, xb, yb, xdim, buf_views[s % 2] if plain else None)
            else:
                L, g = Lcur, gcur
            step_loss_dev.append(L)  # chains that are stopped are masked when the run ends
            # health of the states since the last check: a NaN/Inf gradient puts NaN/Inf into the next
            # state, whose loss (checked here) or distance to the centre (runaway check) is then
            # non-finite; the first non-finite step of each chain is found in the block, so the
            # recorded divergence step is exact
            if s % check_every == check_every - 1 or s == last_draw:
                lo = s - s % check_every
                fin = torch.isfinite(torch.stack(step_loss_dev[lo:s + 1]))
                if not bool(fin.all()):
                    bad_any = ~fin.all(0)
                    for ci in torch.nonzero(bad_any & alive).flatten().tolist():
                        first = lo + int(torch.nonzero(~fin[:, ci])[0, 0])
                        stop(torch.arange(C, device=dev) == ci, first,
                             "loss became NaN/Inf (or the gradient did at the step before)")
                        all_alive = False
            j = draw_of_step.get(s)
            if j is not None:
                Lrec = L
                if loss_eval == "full" and sampler == "sgld":
                    Lrec = engine.full_loss(flat, src, chunk_size)
                loss_dev.append(Lrec)
                if pair_trace is not None:
                    xb2, yb2, xdim2 = src.next_batch()
                    with torch.no_grad():
                        L2 = engine.losses(flat, xb2, yb2, xdim2)
                    pair_trace[:, j] = torch.where(alive, L2, torch.nan).cpu()
                if d2_cur is None:
                    d2_cur = torch.linalg.vector_norm(flat - c, dim=-1).square()
                dist_dev.append(d2_cur)
                if observable is not None:
                    o = eval_obs(flat)
                    o = torch.where(alive[:, None], o, torch.nan)
                    obs_list[j] = o.cpu()
                if pdraws is not None:
                    pdraws[:, j] = torch.where(alive[:, None], flat, torch.nan).cpu()
            if s == last_draw:
                break
            with torch.no_grad():
                if rms or sampler == "mala" or mala_every:
                    noise = torch.randn((C, P), generator=gen, device=dev, dtype=dtype)
                    gl = nb_t * g
                    drift = gl + gamma * (flat - c) if gamma > 0 else gl
                    if rms:
                        V = gl * gl if V is None else rmsprop_alpha * V + (1 - rmsprop_alpha) * gl * gl
                        G = 1.0 / (V.sqrt() + rmsprop_eps)
                        new = flat - half_lr * G * drift + (lr_t * G).sqrt() * noise
                    else:
                        new = flat - half_lr * drift + sqrt_lr * noise
                else:
                    # in place on the noise buffer (no temporaries):
                    # w − (ε/2)(nβ g + γ(w − c)) + √ε ξ = (1 − εγ/2) w + (εγ/2) c − (εnβ/2) g + √ε ξ
                    new = bufs[(s + 1) % 2]
                    if uniform:  # √ε drawn with the noise: normal_(0, √ε) gives the same numbers as √ε·randn
                        new.normal_(0.0, s_lr, generator=gen)
                    else:
                        new.normal_(generator=gen).mul_(sqrt_lr)
                    _axpy(new, g, c_g)
                    if gamma > 0:
                        _axpy(new, flat, c_w).add_(c_term)
                    else:
                        new.add_(flat)
                if sampler == "mala" or (mala_every and s % mala_every == 0):
                    # Metropolis-Hastings log ratio of the Langevin proposal
                    if sampler == "mala":
                        Lnew, gnew = engine.full_loss(new, src, chunk_size, grad=True)
                    else:
                        Lnew, gnew = engine.loss_and_grad(new, xb, yb, xdim)
                    Gm = G if rms else 1.0

                    nbv = nb_t if nb_uniform else nb_t[:, 0]

                    def U(Lv, w):
                        return nbv * Lv + (0.5 * gamma * ((w - c) ** 2).sum(1) if gamma > 0 else 0.0)

                    dnew = nb_t * gnew + (gamma * (new - c) if gamma > 0 else 0.0)
                    fwd = new - flat + half_lr * Gm * drift
                    bwd = flat - new + half_lr * Gm * dnew
                    logq_fwd = -(fwd * fwd / Gm).sum(1) / (2 * lr_t[:, 0])
                    logq_bwd = -(bwd * bwd / Gm).sum(1) / (2 * lr_t[:, 0])
                    log_a = -U(Lnew, new) + U(L, flat) + logq_bwd - logq_fwd
                    a = torch.exp(torch.clamp(log_a, max=0.0))
                    a = torch.where(torch.isfinite(a), a, torch.zeros_like(a))
                    acc_sum += torch.where(alive, a, torch.zeros_like(a))
                    acc_cnt += 1
                    if sampler == "mala":
                        u = torch.rand(C, generator=gen, device=dev, dtype=dtype)
                        accept = (u < a) & torch.isfinite(Lnew)
                        new = torch.where(accept[:, None], new, flat)
                        Lcur = torch.where(accept, Lnew, Lcur)
                        gcur = torch.where(accept[:, None], gnew, gcur)
                d2_cur = None  # ‖w − c‖² of the next state, computed at most once per step (runaway check + distance trace)
                if (s + 1) in draw_of_step:
                    d2_cur = torch.linalg.vector_norm(new - c, dim=-1).square()
                if s % check_every == 0:
                    d2 = d2_cur = d2_cur if d2_cur is not None else torch.linalg.vector_norm(new - c, dim=-1).square()
                    nonfinite = ~torch.isfinite(d2)
                    if bool((nonfinite & alive).any()):
                        stop(nonfinite, s + 1, "weights became NaN/Inf (NaN/Inf gradient)")
                        all_alive = False
                    runaway = d2 > radius2
                    if bool((runaway & alive).any()):
                        stop(runaway, s + 1, f"‖w − center‖² exceeded {radius2:.3g} (runaway: lr too large for the curvature "
                                             f"met, or localization too weak)")
                        all_alive = False
                if not all_alive:
                    if plain:
                        new[~alive] = c  # in place: ``new`` is one of the two state buffers
                    else:
                        new = torch.where(alive[:, None], new, c)
                    if sampler == "mala":
                        Lcur = torch.where(alive, Lcur, torch.zeros_like(Lcur))
                        gcur = torch.where(alive[:, None], gcur, torch.zeros_like(gcur))
                flat = new
            if pbar is not None:
                pbar.update(1)
    finally:
        if prev_sigint is not None:
            signal.signal(signal.SIGINT, prev_sigint)
    if pbar is not None:
        pbar.close()
    # a chain stopped at step s_c contributes no step loss and no draw at or after s_c
    dead_after = torch.as_tensor(np.where(div_step >= 0, div_step, np.iinfo(np.int64).max))
    step_loss = torch.where(torch.arange(s + 1)[None, :] < dead_after[:, None], torch.stack(step_loss_dev).T.cpu(), torch.nan)
    keep = torch.as_tensor(draw_steps)[None, :] < dead_after[:, None]            # (C, D)
    loss_trace = torch.where(keep, torch.stack(loss_dev).T.cpu(), torch.nan)
    dist_trace = torch.where(keep, torch.stack(dist_dev).T.cpu(), torch.nan)

    diverged = div_step >= 0
    if diverged.any():
        msg = (f"{int(diverged.sum())}/{C} chains diverged and were stopped: "
               + "; ".join(f"chain {i} at step {div_step[i]}: {div_reason[i]}" for i in np.nonzero(diverged)[0]))
        warn_msgs.append(msg)
        warnings.warn(msg, DivergenceWarning, stacklevel=3)
    # draws recorded between a chain's divergence step and the check that found it are masked too
    obs = None
    if observable is not None:
        obs = torch.where(keep[:, :, None], torch.stack(obs_list, 1), torch.nan).numpy()  # (C, D, k)
    if pdraws is not None:
        pdraws = torch.where(keep[:, :, None], pdraws, torch.nan)
    if pair_trace is not None:
        pair_trace = torch.where(keep, pair_trace, torch.nan)
    return SampleResult(
        loss_trace=loss_trace.numpy(),
        step_loss=step_loss.numpy(),
        distance_trace=dist_trace.numpy(),
        init_loss=init_loss,
        n=n,
        nbeta=nb if nb_uniform else np.asarray(nb_list),
        localization=gamma,
        lr=np.asarray(lrs),
        sampler=sampler,
        loss_eval=("full" if sampler == "mala" else loss_eval),
        num_burnin_steps=B,
        num_steps_bw_draws=K,
        diverged=diverged,
        divergence_step=div_step,
        divergence_reason=div_reason,
        mala_acceptance=(acc_sum / acc_cnt).cpu().numpy() if acc_cnt else None,
        pair_loss_trace=None if pair_trace is None else pair_trace.numpy(),
        observables=obs,
        param_draws=None if pdraws is None else pdraws.numpy(),
        final_flat=flat.detach().cpu() if keep_final else None,
        layout=layout,
        curvature=curvature,
        wall_time=time.perf_counter() - t_start,
        warnings=warn_msgs,
        config=dict(sampler=sampler, lr=lrs, localization=gamma, nbeta=(nb if nb_uniform else nb_list), n=n, num_chains=C, num_draws=D,
                    num_burnin_steps=B, num_steps_bw_draws=K,
                    batch_size=(src.b if isinstance(src, InMemoryData) else getattr(loader, "batch_size", None)),
                    precondition="rmsprop" if rms else None, loss_eval=loss_eval, seed=int(seed), device=str(dev),
                    sampled_params=list(layout.names), num_sampled=P,
                    init_loss_source=("all data" if loader is None else
                                      f"DataLoader average over {'all' if init_loss_batches is None else init_loss_batches} batches")),
    )
