"""MALA (Roberts & Tweedie 1996): the Langevin proposal on the *full-data* potential
U(w) = nβ·L_n(w) + (γ/2)‖w − c‖², accepted with the Metropolis–Hastings ratio — exact for the target
at any ε (small models; the bias-free reference).  The state carries L_n and its gradient."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .sgld import LangevinKernel


@dataclass
class MALAState:
    position: torch.Tensor    # (C, P)
    loss: torch.Tensor        # (C,) exact L_n at ``position``
    grad: torch.Tensor        # (C, P) its gradient


class MALA(LangevinKernel):
    name = "mala"
    state_type = MALAState
    exact_loss = True

    @classmethod
    def make_problem(cls, model, data, loss, layout, s, dev, make_engine):
        from .base import langevin_problem

        return langevin_problem(model, data, loss, layout, s, dev, make_engine, in_memory_only=True)

    def _full(self, position):
        p = self.problem
        return p.engine.full_loss(position, p.src, p.chunk_size, grad=True)

    def init(self, position):
        return MALAState(position, *self._full(position))

    def step(self, rng, state):
        flat, L, g = state.position, state.loss, state.grad
        with torch.no_grad():
            noise = self.noise(rng, flat)
            _, drift = self.drift(flat, g)
            new = flat - self.half_lr * drift + self.sqrt_lr * noise
            Lnew, gnew = self._full(new)
            a = self.mh_acceptance(flat, L, drift, new, Lnew, gnew)
            u = torch.rand(flat.shape[0], generator=rng, device=flat.device, dtype=flat.dtype)
            accept = (u < a) & torch.isfinite(Lnew)
            new = torch.where(accept[:, None], new, flat)
            L = torch.where(accept, Lnew, L)
            g = torch.where(accept[:, None], gnew, g)
        return MALAState(new, L, g), {"acceptance": a}

    def result_fields(self) -> dict:
        return {"loss_eval": "full"}
