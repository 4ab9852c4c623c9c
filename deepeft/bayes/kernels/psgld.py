"""RMSProp-preconditioned SGLD (Li, Chen, Carlson, Carin 2016, "pSGLD", eq. 4, without the Γ
correction term)::

    V ← αV + (1−α)(nβ∇L_batch)²,   G = 1/(√V + δ),
    w ← w − (ε/2) G ⊙ [nβ∇L_batch + γ(w − c)] + N(0, ε G)

``sample(..., precondition='rmsprop')`` selects it; V (initialised with the first squared gradient)
is part of the state.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .sgld import SGLD, SGLDState


@dataclass
class PSGLDState(SGLDState):
    V: torch.Tensor | None = None   # (C, P) running mean of the squared scaled gradient


class PSGLD(SGLD):
    name = "sgld"
    state_type = PSGLDState

    def __init__(self, problem, settings):
        super().__init__(problem, settings)
        self.alpha, self.delta = float(settings.rmsprop_alpha), float(settings.rmsprop_eps)

    def preflight(self, health):
        return None  # the preconditioned step has no single stability bound

    def init(self, position):
        return PSGLDState(position, *self._evaluate(position))

    def propose(self, state, flat, gl, drift, noise):
        V = gl * gl if state.V is None else self.alpha * state.V + (1 - self.alpha) * gl * gl
        G = 1.0 / (V.sqrt() + self.delta)
        return flat - self.half_lr * G * drift + (self.lr_t * G).sqrt() * noise, G, {"V": V}


SGLD.preconditioned = PSGLD
