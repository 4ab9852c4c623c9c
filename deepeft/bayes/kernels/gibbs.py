"""``sample(..., sampler='gibbs')``: exact blocked Gibbs sweeps for a deep linear network on its
full-data Gaussian-NLL (or MSE) posterior — every factor redrawn from its Gaussian conditional
(:func:`deepeft.bayes.dln_gibbs.gibbs_sweeps`), so it mixes whatever the conditioning.  One sweep is
one step; the data enter through Σ = xᵀx/n, Σ_yx = yᵀx/n and tr Σ_yy (any regression data: noisy
targets, correlated inputs); every recorded loss is the exact L_n.  The state's position is the
concatenated factors (float64)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ...core.errors import ParameterError
from .._data import LOSSES, split_data
from ..chains import default_nbeta
from ..dln_gibbs import factor_product, gibbs_sweeps, quadratic_loss
from .base import Kernel, Problem


@dataclass
class GibbsState:
    position: torch.Tensor    # (C, P) the factors, flattened and concatenated
    loss: torch.Tensor        # (C,) exact L_n
    Ws: list                  # the factors, each (C, H_(i+1), H_i)


def dln_layers(model) -> list | None:
    """The bias-free ``nn.Linear`` layers of a plain ``nn.Sequential`` (a deep linear network), else None."""
    if type(model) is not nn.Sequential or model._forward_hooks or model._forward_pre_hooks:
        return None
    layers = list(model.children())
    if not layers or any(type(m) is not nn.Linear or m.bias is not None or m._forward_hooks or m._forward_pre_hooks
                         for m in layers):
        return None
    return layers


class Gibbs(Kernel):
    name = "gibbs"
    state_type = GibbsState
    exact_loss = True
    can_diverge = False
    unsupported = {
        "precondition": (lambda s: s.precondition == "rmsprop", "None"),
        "mala_every": (lambda s: s.mala_every > 0, "0"),
        "observable": (lambda s: s.observable is not None, "None"),
        "loss_eval": (lambda s: s.loss_eval == "two_batch", "'batch' or 'full' (every recorded loss is the exact L_n)"),
    }

    @classmethod
    def auto_burnin(cls, lrs, gamma, D, K):
        return max(1, D * K // 4)  # exact conditionals: a few sweeps mix

    @classmethod
    def make_problem(cls, model, data, loss, layout, s, dev, make_engine) -> Problem:
        layers = dln_layers(model)
        if layers is None:
            raise ParameterError("model", type(model).__name__,
                                 "an nn.Sequential of bias-free nn.Linear layers (a deep linear network) with sampler='gibbs'")
        if list(layout.names) != [n for n, _ in model.named_parameters()]:
            raise ParameterError("params", list(layout.names), "None (every factor sampled) with sampler='gibbs'")
        if loss is LOSSES["gaussian_nll"]:
            kappa = 1.0
        elif loss is LOSSES["mse"]:
            kappa = 2.0 / layers[-1].out_features  # mean over outputs as well: (2/H_L) × the Gaussian NLL
        else:
            raise ParameterError("loss_fn", getattr(loss, "__name__", loss), "'gaussian_nll' or 'mse' with sampler='gibbs'")
        if not s.gamma > 0:
            raise ParameterError("localization", s.gamma, "> 0 with sampler='gibbs' (the conditionals need a proper prior)")
        x, y, loader = split_data(data)
        if loader is not None:
            raise ParameterError("data", "a DataLoader", "in-memory tensors (x, y) with sampler='gibbs' (it uses the full-data moments)")
        H = [layers[0].in_features] + [m.out_features for m in layers]
        if y is None or x.dim() != 2 or y.dim() != 2 or x.shape[1] != H[0] or y.shape[1] != H[-1]:
            raise ParameterError("data", f"x {tuple(x.shape)}, y {None if y is None else tuple(y.shape)}",
                                 f"x of shape (n, {H[0]}) and y of shape (n, {H[-1]}) with sampler='gibbs'")
        n, C = int(x.shape[0]), s.C
        nbetas = [default_nbeta(n)] * C if s.nbetas is None else s.nbetas
        dt = torch.float64
        xd, yd = x.to(dev, dt), y.to(dev, dt)
        Sig, Syx, syy = xd.T @ xd / n, yd.T @ xd / n, float((yd * yd).sum()) / n
        Wstar = [m.weight.detach().to(dev, dt) for m in layers]
        if isinstance(s.center, str) and s.center == "zero":
            Wc = [torch.zeros_like(W) for W in Wstar]
        elif s.center is None:
            Wc = Wstar
        else:
            raise ParameterError("center", type(s.center).__name__, "None (w*) or 'zero' with sampler='gibbs'")
        if s.init is None:
            W0 = Wstar
        elif isinstance(s.init, str) and s.init == "center":
            W0 = Wc
        else:
            raise ParameterError("init", type(s.init).__name__, "None (w*) or 'center' with sampler='gibbs'")

        def loss_of(P):  # exact full-data L_n(P) = κ(ℓ(P) + ½ tr Σ_yy)
            return kappa * (quadratic_loss(P, Sig, Syx) + 0.5 * syy)

        flat0 = torch.cat([W.reshape(-1) for W in W0]).expand(C, -1).clone()
        return Problem(model=model, engine=None, layout=layout, src=None, loader=None, n=n, dev=dev, dtype=dt,
                       gen=torch.Generator(device=dev).manual_seed(int(s.seed)), c=torch.cat([W.reshape(-1) for W in Wc]),
                       init=flat0, lrs=[float("nan")] * C, nbetas=nbetas, gamma=float(s.gamma), chunk_size=s.chunk_size,
                       init_loss=float(loss_of(factor_product(Wstar)[None])[0]), x=x, y=y,
                       extra=dict(loss_of=loss_of, Sig=Sig, Syx=Syx, Wc=Wc, shapes=[tuple(W.shape) for W in Wstar],
                                  t=kappa * torch.tensor(nbetas, dtype=dt, device=dev)))

    def init(self, position):
        C, Ws, o = position.shape[0], [], 0
        for h1, h0 in self.problem.extra["shapes"]:
            Ws.append(position[:, o:o + h1 * h0].reshape(C, h1, h0).clone())
            o += h1 * h0
        return GibbsState(position, self.problem.extra["loss_of"](factor_product(Ws)), Ws)

    def step(self, rng, state):
        e = self.problem.extra
        Ws, out = list(state.Ws), {}
        gibbs_sweeps(Ws, e["Wc"], e["Sig"], e["Syx"], e["t"], self.problem.gamma, 1, rng,
                     lambda s, P: out.__setitem__("P", P))
        return GibbsState(torch.cat([W.flatten(1) for W in Ws], 1), e["loss_of"](out["P"]), Ws), {}

    def distance2(self, state):
        return sum(((W - Wc_i) ** 2).flatten(1).sum(1) for W, Wc_i in zip(state.Ws, self.problem.extra["Wc"]))

    def final_flat(self, state):
        return state.position.to(next(self.problem.model.parameters()).dtype).cpu()

    def result_fields(self) -> dict:
        return {"lr": np.full(self.problem.C, np.nan), "loss_eval": "full", "curvature": None,
                "config": dict(lr=None, batch_size=None, precondition=None, loss_eval="full",
                               init_loss_source="all data (exact moments)",
                               step_unit="one Gibbs sweep (every factor redrawn from its exact conditional)")}
