"""What a sampling run is made of and what it returns: the warnings it raises, the layout of the
sampled parameters inside the flat (chains, P) state, and :class:`SampleResult`.  Shared by the
public :func:`~deepeft.bayes.samplers.sample`, the kernels (:mod:`deepeft.bayes.kernels`) and the
driver (:mod:`deepeft.bayes.driver`); it imports none of them."""
from __future__ import annotations

import copy
import fnmatch
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..core.errors import AccuracyWarning, ParameterError


class StepSizeWarning(AccuracyWarning):
    """The step size is large enough to bias the estimate noticeably (or is close to the stability bound)."""


class ConvergenceWarning(AccuracyWarning):
    """Chains disagree (R-hat > 1.1) or the loss trace is not flat (still burning in)."""


class DivergenceWarning(AccuracyWarning):
    """One or more chains diverged and were stopped; estimates use the remaining chains."""


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


def default_nbeta(n: int) -> float:
    """nβ = n / log n (β = 1/log n, Watanabe's WBIC temperature)."""
    if n < 2:
        raise ParameterError("n", n, ">= 2 for the default nbeta = n/log(n); pass nbeta explicitly")
    return n / math.log(n)


#: Defaults of :func:`estimate_llc` and ``deepeft llc``, chosen from measurements
#: (bench/defaults/llc_defaults.py, docs/bayes.md "Defaults"): on a [5,4,5] deep linear network at w* = 0
#: (λ = 8; exact finite-nβ value at γ = 1: 7.57) γ = 100 gives λ̂ = 0.59 (localisation share q = 0.94) and
#: γ = 10 gives 5.4, γ = 1 gives 7.60 ± 0.20; 4 chains × 200 draws gave R̂ = 1.11–1.14 at every γ,
#: 8 × 1000 gave R̂ = 1.03–1.05.  ``lr='auto'`` calibrates the step (:func:`deepeft.bayes.calibrate`).
#: Shared by estimate_llc, calibrate and the CLI.
LLC_DEFAULTS = {"localization": 1.0, "num_chains": 8, "num_draws": 1000}
