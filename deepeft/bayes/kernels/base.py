"""What every sampler kernel shares: the run's fixed pieces (:class:`Problem`), the user's settings
(:class:`Settings`), and the :class:`Kernel` interface the driver calls.

The kernel shape is blackjax's: ``state = kernel.init(position)`` and
``state, info = kernel.step(rng, state)``.  A state is a dataclass of tensors whose first field is
``position`` (the (chains, P) flat parameters) and which carries ``loss`` — the (chains,) loss the
kernel evaluated at that position (a minibatch loss for SGLD, the exact L_n for MALA and Gibbs);
whatever else the kernel needs next step (a gradient, RMSProp's V, a minibatch) is a field too.  The
driver (:mod:`deepeft.bayes.driver`) saves and restores a state field by field, so a kernel's
checkpoint needs no code.  ``info`` is a dict of per-step diagnostics (``"acceptance"``: a (chains,)
Metropolis–Hastings acceptance probability) that the driver accumulates.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch.func import functional_call

from ...core.errors import ParameterError
from .._data import InMemoryData, LoaderData, check_targets, split_data
from ..chains import ParamLayout, default_nbeta


#: the automatic burn-in covers this many localisation relaxation times 1/(ε·γ) …
BURNIN_RELAXATION_TIMES = 3
#: … but at most this many times the sampling span num_draws·num_steps_bw_draws (then the
#: relaxation-time warning of estimate_llc says that it was not enough)
BURNIN_MAX_SPANS = 10


@dataclass
class Settings:
    """The validated settings of one ``sample`` call that kernels and the driver read."""

    sampler: str
    lrs: list
    gamma: float
    nbetas: list | None         # one nβ per chain, or None for the default n/log n
    C: int
    D: int
    B: int
    K: int
    batch_size: int | None = None
    n: int | None = None
    center: Any = None
    init: Any = None
    precondition: str | None = None
    rmsprop_alpha: float = 0.99
    rmsprop_eps: float = 1e-8
    loss_eval: str = "batch"
    init_loss_batches: int | None = None
    observable: Any = None
    probe: Any = None
    record_params: bool = False
    mala_every: int = 0
    check_stability: bool = True
    divergence_radius_factor: float = 1e4
    on_divergence: str = "warn"
    chunk_size: int = 4096
    seed: int = 0
    progress: Any = "auto"  # see deepeft.core.progress
    keep_final: bool = True
    checkpoint: Any = None
    checkpoint_every: int = 1000
    loss_name: str = ""


@dataclass
class Problem:
    """The fixed pieces of a run: model, loss engine, data source, centre c, initial states, ε, nβ, γ."""

    model: Any
    engine: Any
    layout: ParamLayout
    src: Any                      # InMemoryData or LoaderData (minibatches, chunks of all data)
    loader: Any                   # the DataLoader, or None for in-memory data
    n: int
    dev: torch.device
    dtype: torch.dtype
    gen: torch.Generator          # the run's one source of randomness (noise and minibatch order)
    c: torch.Tensor               # (P,) localisation centre
    init: torch.Tensor            # (C, P) initial states
    lrs: list
    nbetas: list
    gamma: float
    chunk_size: int
    init_loss: float
    x: Any = None                 # in-memory data (for the checkpoint fingerprint)
    y: Any = None
    extra: dict = field(default_factory=dict)

    @property
    def C(self) -> int:
        return len(self.lrs)

    @property
    def P(self) -> int:
        return int(self.c.shape[-1])

    @property
    def nb_uniform(self) -> bool:
        return all(v == self.nbetas[0] for v in self.nbetas)

    @property
    def lr_t(self) -> torch.Tensor:
        return torch.tensor(self.lrs, device=self.dev, dtype=self.dtype)[:, None]

    @property
    def nb_t(self):
        """nβ as a Python number when every chain has the same, else a (C, 1) tensor."""
        if self.nb_uniform:
            return self.nbetas[0]
        return torch.tensor(self.nbetas, device=self.dev, dtype=self.dtype)[:, None]


class Kernel:
    """Base class of a sampler kernel (see the module docstring).  Subclasses set ``name`` and
    implement :meth:`init` and :meth:`step`; the class attributes say what the driver may assume."""

    name: ClassVar[str] = ""
    #: the dataclass of this kernel's states (a checkpoint stores its fields and rebuilds it)
    state_type: ClassVar[type] = object
    #: the recorded loss of a state is the exact full-data L_n (``loss_eval='full'`` costs nothing extra)
    exact_loss: ClassVar[bool] = False
    #: chains can leave the region where the posterior lives (the driver checks losses and radii)
    can_diverge: ClassVar[bool] = True
    #: settings this kernel cannot honour: name -> (test on Settings, what is allowed)
    unsupported: ClassVar[dict] = {}
    #: the kernel used instead when ``precondition='rmsprop'`` (None: not supported)
    preconditioned: ClassVar[type | None] = None

    def __init__(self, problem: Problem, settings: Settings):
        self.problem = problem
        self.settings = settings

    # --------------------------------------------------------------------------- set-up hooks
    @classmethod
    def check_settings(cls, s: Settings) -> None:
        for name, (bad, allowed) in cls.unsupported.items():
            if bad(s):
                value = getattr(s, name, None)
                raise ParameterError(name, "a function" if callable(value) else value, f"{allowed} with sampler={s.sampler!r}")

    @classmethod
    def auto_burnin(cls, lrs, gamma: float, D: int, K: int) -> int:
        """``num_burnin_steps='auto'`` (see :func:`deepeft.bayes.samplers.auto_burnin`)."""
        if gamma <= 0:
            return 0
        return int(min(math.ceil(BURNIN_RELAXATION_TIMES / (min(lrs) * gamma)), BURNIN_MAX_SPANS * D * K))

    @classmethod
    def make_problem(cls, model, data, loss, layout, s: Settings, dev, make_engine) -> Problem:
        """The run's fixed pieces (default: the Langevin set-up, :func:`langevin_problem`);
        ``make_engine(model, layout, loss)`` builds the batched loss/gradient engine."""
        return langevin_problem(model, data, loss, layout, s, dev, make_engine, in_memory_only=False)

    def preflight(self, health) -> float | None:
        """Checks before the first step (``health``: :class:`deepeft.bayes.driver.Health`, whose
        ``stop_at_start(chain, reason)`` stops a chain).  Returns a curvature estimate (or None)."""
        return None

    # ------------------------------------------------------------------------------- the kernel
    def init(self, position: torch.Tensor):
        raise NotImplementedError

    def step(self, rng: torch.Generator, state) -> tuple[Any, dict]:
        """One transition: :meth:`move`, then :meth:`evaluate` at the new position.  A kernel
        implements either ``step`` or the two halves (the driver calls the halves, so that it can
        stop a diverged chain before its next evaluation)."""
        state, info = self.move(rng, state)
        return self.evaluate(state), info

    def move(self, rng: torch.Generator, state) -> tuple[Any, dict]:
        return self.step(rng, state)

    def evaluate(self, state):
        return state

    # ----------------------------------------------------------------------- views of a state
    def distance2(self, state) -> torch.Tensor:
        """‖w − c‖² per chain."""
        return torch.linalg.vector_norm(state.position - self.problem.c, dim=-1).square()

    def final_flat(self, state) -> torch.Tensor:
        return state.position.detach().cpu()

    def result_fields(self) -> dict:
        """Fields of the SampleResult / its config that this kernel sets differently."""
        return {}


def check_scalar_loss(engine, flat0: torch.Tensor, x, y, y_all=None) -> None:
    with torch.no_grad():  # target shapes / class indices (all of y_all) against the model's outputs
        check_targets(engine.loss_fn, functional_call(engine.model, (engine.layout.views(flat0), engine.layout.frozen), (x,)),
                      y if y_all is None else y_all)
        out = engine.single(engine.layout.views(flat0), x, y)
    if not isinstance(out, torch.Tensor) or out.dim() != 0:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ParameterError("loss_fn", f"returned {shape}", "a function returning a scalar (0-dim) tensor: the mean loss of the batch")
    if not bool(torch.isfinite(out)):
        raise ParameterError("loss at the initial weights", float(out), "a finite value (check the data, the model and loss_fn)")


def langevin_problem(model, data, loss, layout, s: Settings, dev, make_engine, in_memory_only: bool) -> Problem:
    """Device placement, data source, n, nβ, centre, initial states and the initial loss L_n(w*) of a
    gradient-based run."""
    if next(model.parameters()).device != dev:
        model.to(dev)
        layout.frozen = {k: v.to(dev) for k, v in layout.frozen.items()}

    x, y, loader = split_data(data)
    gen = torch.Generator(device=dev).manual_seed(int(s.seed))
    C = s.C
    if loader is None:
        nn_ = int(x.shape[0])
        if s.n is not None and int(s.n) != nn_:
            raise ParameterError("n", s.n, f"omitted or equal to the number of samples ({nn_}) for in-memory data")
        bs = min(nn_, 512) if s.batch_size is None else s.batch_size
        src = InMemoryData(x, y, bs, C, dev, gen)
    else:
        src = LoaderData(loader, dev, s.n)
        if in_memory_only:
            raise ParameterError("data", "a DataLoader",
                                 f"in-memory tensors when sampler={s.sampler!r} (it needs the exact full-data loss)")
    n = src.n
    nbetas = [default_nbeta(n)] * C if s.nbetas is None else s.nbetas
    flat_star = layout.flatten(dict(model.named_parameters())).to(dev)
    dtype = flat_star.dtype
    P = layout.P
    engine = make_engine(model, layout, loss)
    center, init = s.center, s.init
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
    check_scalar_loss(engine, flat_star, xs, ys, getattr(src, "y", None))
    with torch.no_grad():
        if loader is None:
            init_loss = float(engine.full_loss(flat_star[None], src, s.chunk_size)[0])
        else:
            tot, m = 0.0, 0
            for xb, yb, w in src.chunks(s.chunk_size, s.init_loss_batches):
                tot += float(engine.single(layout.views(flat_star), xb, yb)) * w
                m += w
            init_loss = tot / m
    if not math.isfinite(init_loss):
        raise ParameterError("loss at w*", init_loss, "a finite value")
    return Problem(model=model, engine=engine, layout=layout, src=src, loader=loader, n=n, dev=dev, dtype=dtype, gen=gen,
                   c=c, init=flat, lrs=list(s.lrs), nbetas=nbetas, gamma=s.gamma, chunk_size=s.chunk_size,
                   init_loss=init_loss, x=x, y=y, extra={"flat_star": flat_star})
