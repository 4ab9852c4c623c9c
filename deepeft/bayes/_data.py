"""Data and loss plumbing shared by the samplers.

Accepted data (``data=`` everywhere in :mod:`deepeft.bayes`):

* a tuple/list ``(x, y)`` of tensors (or arrays) with the same first dimension n;
* a single tensor ``x`` (then ``y`` is ``None`` and the loss is called as ``loss_fn(output, None)``;
  useful for potentials that ignore the data);
* a dict with keys ``'x'``/``'y'`` (or ``'inputs'``/``'targets'``);
* a ``torch.utils.data.TensorDataset`` of one or two tensors;
* a ``torch.utils.data.DataLoader`` yielding ``(x, y)`` (or ``x``) batches.

In-memory data is sampled by the library: each chain draws its *own* minibatches (per-chain
shuffled epochs, batch without replacement inside an epoch, the incomplete tail of an epoch is
dropped).  A DataLoader is iterated by the library (re-started when exhausted); all chains
then share the loader's batch at each step.

Losses: ``loss_fn(output, target) -> 0-dim tensor`` must be the *mean* over the samples of the
batch (so that full-data losses can be assembled from chunks).  Strings: ``'mse'``
(``torch.nn.functional.mse_loss``, mean over samples *and* output coordinates — see
``conventions``: nβ_eff = nβ·2σ²/D_out), ``'gaussian_nll'`` (½‖y − f‖² summed over outputs, mean
over samples: the Gaussian NLL with σ = 1 up to a constant, so nβ is the true nβ),
``'cross_entropy'``.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

import torch
from torch import nn

from ..core.device import resolve_device  # noqa: F401  (one device rule for the library)
from ..core.errors import ParameterError


# --------------------------------------------------------------------------------------- losses
def _gaussian_nll(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    d = out - y
    if d.dim() <= 1:
        return 0.5 * (d * d).mean()
    return 0.5 * (d * d).flatten(1).sum(1).mean()


def _mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.mse_loss(out, y)


def _xent(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(out, y)


LOSSES: dict[str, Callable] = {"mse": _mse, "gaussian_nll": _gaussian_nll, "cross_entropy": _xent}


# Chains-batched values and output-gradients of the built-in losses: out (C, b, ...) per chain,
# y (C, b, ...) or shared (b, ...).  Returns (L (C,), dL/d out) — the same numbers as vmapping the
# loss and differentiating it (tested), without the per-step vmap/autograd overhead.
def _sq_norms(d: torch.Tensor) -> torch.Tensor:
    f = d.reshape(d.shape[0], -1)
    return torch.linalg.vecdot(f, f)


def _gaussian_nll_grad(out: torch.Tensor, y: torch.Tensor):
    d = out - y
    b = out.shape[1]
    L = _sq_norms(d) * (0.5 / b)
    return L, d.mul_(1.0 / b)


def _mse_grad(out: torch.Tensor, y: torch.Tensor):
    d = out - y
    k = d[0].numel()
    L = _sq_norms(d) * (1.0 / k)
    return L, d.mul_(2.0 / k)


def _xent_grad(out: torch.Tensor, y: torch.Tensor):
    if out.dim() != 3 or y.dtype not in (torch.int64, torch.int32, torch.uint8) or y.dim() not in (1, 2):
        return None  # soft targets or extra dimensions: the generic path
    b = out.shape[1]
    lse = torch.logsumexp(out, dim=-1)
    yy = y.long().expand(out.shape[0], b) if y.dim() == 1 else y.long()
    picked = out.gather(-1, yy.unsqueeze(-1)).squeeze(-1)
    g = torch.softmax(out, dim=-1)
    g.scatter_add_(-1, yy.unsqueeze(-1), torch.full_like(picked.unsqueeze(-1), -1.0))
    return (lse - picked).mean(1), g / b


LOSS_GRADS: dict[Callable, Callable] = {_gaussian_nll: _gaussian_nll_grad, _mse: _mse_grad, _xent: _xent_grad}


def _standard_torch_loss(loss_fn: Any) -> Callable | None:
    """The built-in equal to a standard torch loss passed as a callable (so it gets the closed-form
    output gradient): ``F.mse_loss`` / ``nn.MSELoss()`` and ``F.cross_entropy`` /
    ``nn.CrossEntropyLoss()`` with their default arguments; else None."""
    F = torch.nn.functional
    if loss_fn is F.mse_loss:
        return _mse
    if loss_fn is F.cross_entropy:
        return _xent
    if type(loss_fn) is nn.MSELoss and loss_fn.reduction == "mean":
        return _mse
    if (type(loss_fn) is nn.CrossEntropyLoss and loss_fn.reduction == "mean" and loss_fn.weight is None
            and loss_fn.ignore_index == -100 and loss_fn.label_smoothing == 0.0):
        return _xent
    return None


def resolve_loss(loss_fn: Any) -> Callable:
    """A built-in loss name, or a callable ``(output, target) -> scalar``; standard torch losses
    with default arguments resolve to the equal built-in."""
    if isinstance(loss_fn, str):
        if loss_fn not in LOSSES:
            raise ParameterError("loss_fn", loss_fn, f"one of {sorted(LOSSES)} or a callable (output, target) -> scalar")
        return LOSSES[loss_fn]
    if not callable(loss_fn):
        raise ParameterError("loss_fn", loss_fn, f"one of {sorted(LOSSES)} or a callable (output, target) -> scalar")
    return _standard_torch_loss(loss_fn) or loss_fn


# ----------------------------------------------------------------------------------------- data
def _as_tensor(name: str, a: Any) -> torch.Tensor:
    if a is None:
        return None  # type: ignore[return-value]
    if not isinstance(a, torch.Tensor):
        try:
            a = torch.as_tensor(a)
        except Exception:
            raise ParameterError(name, type(a).__name__, "a tensor or array") from None
    return a


def _check_tensor(name: str, t: torch.Tensor) -> None:
    if t.dim() == 0 or t.shape[0] == 0:
        raise ParameterError(name, f"tensor of shape {tuple(t.shape)}", "at least one sample (non-empty first dimension)")
    if t.is_floating_point() or t.is_complex():
        if not bool(torch.isfinite(t).all()):
            raise ParameterError(name, "tensor containing NaN/Inf", "finite values only")


def split_data(data: Any) -> tuple[torch.Tensor | None, torch.Tensor | None, Any]:
    """Return (x, y, loader): in-memory tensors or (None, None, loader)."""
    from torch.utils.data import DataLoader, TensorDataset

    if data is None:
        raise ParameterError("data", None, "(x, y) tensors, a tensor, a dict, a TensorDataset or a DataLoader")
    if isinstance(data, DataLoader):
        return None, None, data
    if isinstance(data, TensorDataset):
        data = tuple(data.tensors)
    if isinstance(data, dict):
        kx = "x" if "x" in data else "inputs" if "inputs" in data else None
        if kx is None:
            raise ParameterError("data", f"dict with keys {sorted(data)}", "a dict with keys 'x' and 'y' (or 'inputs'/'targets')")
        ky = "y" if "y" in data else "targets" if "targets" in data else None
        data = (data[kx], data[ky]) if ky else (data[kx],)
    if isinstance(data, (tuple, list)):
        if len(data) not in (1, 2):
            raise ParameterError("data", f"sequence of length {len(data)}", "(x,) or (x, y)")
        x = _as_tensor("data[0] (inputs)", data[0])
        y = _as_tensor("data[1] (targets)", data[1]) if len(data) == 2 else None
    else:
        x, y = _as_tensor("data", data), None
    _check_tensor("data (inputs)", x)
    if y is not None:
        _check_tensor("data (targets)", y)
        if y.shape[0] != x.shape[0]:
            raise ParameterError("data", f"x has {x.shape[0]} rows, y has {y.shape[0]}", "x and y with the same number of samples")
    return x, y, None


def num_samples(data: Any, n: int | None = None) -> int:
    """The data set size n: the rows of in-memory data, else ``n`` or ``len(loader.dataset)``."""
    x, _, loader = split_data(data)
    if loader is None:
        return int(x.shape[0])
    return LoaderData(loader, None, n).n


class InMemoryData:
    """Per-chain minibatches of in-memory tensors (vmapped over chains: in_dims=0)."""

    shared = False

    def __init__(self, x, y, batch_size: int, num_chains: int, device, generator: torch.Generator):
        self.x = x.to(device)
        self.y = None if y is None else y.to(device)
        self.n = int(x.shape[0])
        self.b = min(int(batch_size), self.n)
        self.C = num_chains
        self.g = generator
        self.device = device
        self.full_batch = self.b == self.n
        self._perm = None
        self._pos = self.n  # force a new epoch

    def next_batch(self):
        if self.full_batch:
            return self.x, self.y, None  # shared, in_dims None
        if self._pos + self.b > self.n:
            # new epoch: an independent permutation per chain, stored as (batches, chains·b) so that
            # each step's indices are one contiguous row
            perm = torch.stack([torch.randperm(self.n, generator=self.g, device=self.device) for _ in range(self.C)])
            nb = self.n // self.b
            self._perm = perm[:, :nb * self.b].reshape(self.C, nb, self.b).transpose(0, 1).reshape(nb, self.C * self.b)
            self._pos = 0
        idx = self._perm[self._pos // self.b]
        self._pos += self.b
        xb = self.x.index_select(0, idx).view(self.C, self.b, *self.x.shape[1:])
        yb = None if self.y is None else self.y.index_select(0, idx).view(self.C, self.b, *self.y.shape[1:])
        return xb, yb, 0

    def state(self) -> dict:
        """The minibatch order (for checkpoints): the epoch's permutation and the position in it."""
        return {"perm": self._perm, "pos": self._pos}

    def load_state(self, st: dict) -> None:
        self._perm = None if st["perm"] is None else st["perm"].to(self.device)
        self._pos = int(st["pos"])

    def chunks(self, chunk_size: int) -> Iterator[tuple]:
        for s in range(0, self.n, chunk_size):
            e = min(self.n, s + chunk_size)
            yield self.x[s:e], None if self.y is None else self.y[s:e], e - s

    def subsample(self, m: int):
        m = min(m, self.n)
        return self.x[:m], None if self.y is None else self.y[:m]


def _unpack(batch):
    if isinstance(batch, dict):
        x = batch.get("x", batch.get("inputs"))
        y = batch.get("y", batch.get("targets"))
        return x, y
    if isinstance(batch, (tuple, list)):
        if len(batch) == 1:
            return batch[0], None
        return batch[0], batch[1]
    return batch, None


class LoaderData:
    """A DataLoader: all chains share the loader's batch at each step (in_dims=None)."""

    shared = True

    def __init__(self, loader, device, n: int | None = None):
        self.loader = loader
        self.device = device
        self._it = None
        if n is None:
            try:
                n = len(loader.dataset)
            except Exception:
                raise ParameterError("n", None, "the number of samples, required for a DataLoader whose dataset has no len()") from None
        if n <= 0:
            raise ParameterError("data", "empty DataLoader", "at least one sample")
        self.n = int(n)
        self.full_batch = False

    def _move(self, batch):
        x, y = _unpack(batch)
        x = x.to(self.device)
        y = None if y is None else y.to(self.device)
        return x, y

    def state(self) -> dict:
        return {}  # a DataLoader's iteration cannot be saved: a resumed run restarts it

    def load_state(self, st: dict) -> None:
        self._it = None

    def next_batch(self):
        if self._it is None:
            self._it = iter(self.loader)
        try:
            batch = next(self._it)
        except StopIteration:
            self._it = iter(self.loader)
            try:
                batch = next(self._it)
            except StopIteration:
                raise ParameterError("data", "empty DataLoader", "at least one batch") from None
        x, y = self._move(batch)
        return x, y, None

    def chunks(self, chunk_size: int, max_batches: int | None = None) -> Iterator[tuple]:
        for i, batch in enumerate(self.loader):
            if max_batches is not None and i >= max_batches:
                break
            x, y = self._move(batch)
            if x.shape[0] == 0:
                continue
            yield x, y, int(x.shape[0])

    def subsample(self, m: int):
        xs, ys, k = [], [], 0
        for x, y, w in self.chunks(m):
            xs.append(x)
            if y is not None:
                ys.append(y)
            k += w
            if k >= m:
                break
        if not xs:
            raise ParameterError("data", "empty DataLoader", "at least one batch")
        return torch.cat(xs)[:m], (torch.cat(ys)[:m] if ys else None)


def model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")
