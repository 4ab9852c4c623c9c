"""Vectorised SGLD / preconditioned SGLD / MALA / DLN-Gibbs chains on any ``nn.Module``: the public
:func:`sample`.

Target (conventions in :mod:`deepeft.conventions`, ``slt.md`` §1)::

    p(w) ∝ exp(−nβ·L_n(w) − (γ/2)‖w − c‖²),        c = w* (the model's weights) by default

The update rules are small kernels, one module each (:mod:`deepeft.bayes.kernels`: ``sgld``
(Welling & Teh 2011 with the localisation of Lau et al. 2023), ``psgld`` (Li et al. 2016, selected by
``precondition='rmsprop'``), ``mala`` (Roberts & Tweedie 1996, on the full-data potential) and
``gibbs`` (exact blocked Gibbs sweeps for deep linear networks)); one loop,
:mod:`deepeft.bayes.driver`, runs any of them and owns draws, health checks, checkpoints and Ctrl-C.
This module validates the settings (declared once in :data:`SAMPLE_PARAMS`), picks the kernel and
holds the batched loss engine.

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

import math
import os
import time
from typing import Any, Callable, Sequence

import torch
from torch import nn
from torch.func import functional_call, vmap

from ..core.errors import ParameterError
from ..core.progress import check_progress
from ..core.validation import AnyOf, Choices, Constraint, Interval, PerChain, validate
from . import driver
from ._data import LOSS_GRADS, LoaderData, resolve_device, resolve_loss, split_data, warn_train_mode_layers
from .chains import (  # noqa: F401  (the public names of a run live in chains.py)
    ConvergenceWarning,
    DivergenceWarning,
    ParamLayout,
    SampleResult,
    StepSizeWarning,
    default_nbeta,
    select_parameters,
)
from .curvature import top_hessian_eigenvalue
from .kernels import KERNELS
from .kernels.base import BURNIN_MAX_SPANS, BURNIN_RELAXATION_TIMES, Settings  # noqa: F401

LOSS_EVALS = ("batch", "full", "two_batch")

_POSITIVE = Interval(float, 0.0, open_low=True)
#: every setting of :func:`sample` with what it may be — the one declaration the API, the CLI and
#: study files check (``deepeft.core.validation``); the messages name the parameter and the range
SAMPLE_PARAMS: dict[str, Constraint] = {
    "sampler": Choices(lambda: tuple(KERNELS)),
    "loss_eval": Choices(LOSS_EVALS),
    "precondition": Choices((None, "none", "rmsprop"), "None or 'rmsprop'"),
    "on_divergence": Choices(("warn", "raise"), "'warn' or 'raise'"),
    "num_chains": Interval(int, 1),
    "num_draws": Interval(int, 1),
    "num_steps_bw_draws": Interval(int, 1),
    "localization": Interval(float, 0.0),
    "lr": PerChain(_POSITIVE),
    "nbeta": PerChain(_POSITIVE),
    "num_burnin_steps": AnyOf((Choices(("auto",)), Interval(int, 0)), "an integer >= 0 or 'auto'"),
    "mala_every": Interval(int, 0),
    "chunk_size": Interval(int, 1),
    "checkpoint_every": Interval(int, 1),
    "divergence_radius_factor": _POSITIVE,
    "rmsprop_alpha": Interval(float, 0.0, 1.0, open_high=True),
    "rmsprop_eps": _POSITIVE,
    "batch_size": Interval(int, 1),
    "n": Interval(int, 1),
}


def auto_burnin(sampler: str, lrs: Sequence[float], gamma: float, D: int, K: int) -> int:
    """``num_burnin_steps='auto'``: 3/(ε_min·γ) steps — three relaxation times of the directions that
    only the localisation holds, which near a degenerate w* set how stiff the others are — capped at
    10× the sampling span D·K; 0 when γ = 0; a quarter of the span for Gibbs sweeps (exact
    conditionals: they mix in a few sweeps).  Each kernel says its own (``Kernel.auto_burnin``)."""
    return KERNELS[sampler].auto_burnin(lrs, gamma, D, K)


from ..nets.module import BatchedModule  # noqa: E402  (the batched engine lives in deepeft.nets)
from ..nets.module import activation_derivative as _activation_derivative  # noqa: E402,F401
from ..nets.module import axpy as _axpy  # noqa: E402
from ..nets.module import sequential_plan as _sequential_plan  # noqa: E402,F401


class _Engine(BatchedModule):
    """:class:`deepeft.nets.BatchedModule` with the closed-form gradients of the built-in losses."""

    loss_grads = LOSS_GRADS


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
    progress: bool | str = "auto",
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
    v = validate(SAMPLE_PARAMS, sampler=sampler, loss_eval=loss_eval, precondition=precondition,
                 on_divergence=on_divergence)
    kernel_cls = KERNELS[v["sampler"]]
    if precondition == "rmsprop":
        if kernel_cls.preconditioned is None:
            raise ParameterError("precondition", precondition, f"None when sampler={sampler!r}")
        kernel_cls = kernel_cls.preconditioned
    v.update(validate(SAMPLE_PARAMS, num_chains=num_chains, num_draws=num_draws, num_steps_bw_draws=num_steps_bw_draws,
                      localization=localization))
    C, D, K, gamma = v["num_chains"], v["num_draws"], v["num_steps_bw_draws"], v["localization"]
    lrs = SAMPLE_PARAMS["lr"].bind(C).check("lr", lr)
    nbetas = None if nbeta is None else SAMPLE_PARAMS["nbeta"].bind(C).check("nbeta", nbeta)  # default n/log n: set with n
    B = validate(SAMPLE_PARAMS, num_burnin_steps=num_burnin_steps)["num_burnin_steps"]
    if B == "auto":
        B = kernel_cls.auto_burnin(lrs, gamma, D, K)
    v.update(validate(SAMPLE_PARAMS, mala_every=mala_every, chunk_size=chunk_size, checkpoint_every=checkpoint_every))
    v.update(validate(SAMPLE_PARAMS, **{k: x for k, x in (("batch_size", batch_size), ("n", n)) if x is not None}))
    if checkpoint is not None and not isinstance(checkpoint, (str, os.PathLike)):
        raise ParameterError("checkpoint", type(checkpoint).__name__, "None or a file path")
    validate(SAMPLE_PARAMS, divergence_radius_factor=divergence_radius_factor)
    if precondition == "rmsprop":
        validate(SAMPLE_PARAMS, rmsprop_alpha=rmsprop_alpha, rmsprop_eps=rmsprop_eps)
    dev = resolve_device(device)
    progress = check_progress(progress)
    loss = resolve_loss(loss_fn)
    layout = select_parameters(model, params)
    settings = Settings(
        sampler=sampler, lrs=lrs, gamma=gamma, nbetas=nbetas, C=C, D=D, B=B, K=K, batch_size=v.get("batch_size"), n=v.get("n"),
        center=center, init=init, precondition=precondition, rmsprop_alpha=rmsprop_alpha, rmsprop_eps=rmsprop_eps,
        loss_eval=loss_eval, init_loss_batches=init_loss_batches, observable=observable, probe=probe,
        record_params=record_params, mala_every=v["mala_every"], check_stability=check_stability,
        divergence_radius_factor=float(divergence_radius_factor), on_divergence=on_divergence,
        chunk_size=v["chunk_size"], seed=seed, progress=progress, keep_final=keep_final, checkpoint=checkpoint,
        checkpoint_every=v["checkpoint_every"], loss_name=getattr(loss, "__qualname__", type(loss).__name__))
    kernel_cls.check_settings(settings)
    was_training = model.training
    warn_train_mode_layers(model)  # said when eval mode changes what the model computes
    model.eval()  # dropout/batch-norm statistics must not vary between chains or steps
    try:
        problem = kernel_cls.make_problem(model, data, loss, layout, settings, dev, _Engine)
        return driver.run(kernel_cls(problem, settings), settings, t_start)
    finally:
        model.train(was_training)
