"""SGLD (Welling & Teh 2011) with Gaussian localisation (Lau et al. 2023, "The local learning
coefficient", the SGLD update)::

    w ← w − (ε/2)[nβ·∇L_batch(w) + γ(w − c)] + N(0, ε I)

The state carries the minibatch loss and gradient at its position (evaluated on a fresh minibatch
right after the move), and that minibatch, on which ``mala_every=k`` computes every k-th step the
Metropolis–Hastings acceptance probability of the proposal (devinterp's MALA diagnostic).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from .base import Kernel


@dataclass
class SGLDState:
    position: torch.Tensor    # (C, P)
    loss: torch.Tensor        # (C,) minibatch loss at ``position``
    grad: torch.Tensor        # (C, P) its gradient
    batch: tuple              # (x, y, x_dim) of that minibatch
    t: int = 0                # steps taken


class LangevinKernel(Kernel):
    """The Langevin proposal shared by SGLD, pSGLD and MALA: coefficients and the MH ratio."""

    def __init__(self, problem, settings):
        super().__init__(problem, settings)
        p = problem
        self.c, self.gamma = p.c, p.gamma
        self.lr_t, self.nb_t = p.lr_t, p.nb_t
        self.half_lr = 0.5 * self.lr_t
        self.sqrt_lr = self.lr_t.sqrt()

    def drift(self, position, grad):
        """(nβ∇L, nβ∇L + γ(w − c)): the scaled gradient and the drift of the potential."""
        gl = self.nb_t * grad
        return gl, (gl + self.gamma * (position - self.c) if self.gamma > 0 else gl)

    def noise(self, rng, like):
        return torch.randn(like.shape, generator=rng, device=like.device, dtype=like.dtype)

    def mh_acceptance(self, flat, L, drift, new, Lnew, gnew, Gm=1.0) -> torch.Tensor:
        """min(1, e^{−U(w') + U(w)} q(w | w') / q(w' | w)) of the Langevin proposal w → w' with
        (diagonal) preconditioner Gm (Roberts & Tweedie 1996), U = nβL + (γ/2)‖w − c‖²; 0 where not finite."""
        gamma, c, nb_t, lr = self.gamma, self.c, self.nb_t, self.lr_t[:, 0]
        nbv = nb_t if self.problem.nb_uniform else nb_t[:, 0]

        def U(Lv, w):
            return nbv * Lv + (0.5 * gamma * ((w - c) ** 2).sum(1) if gamma > 0 else 0.0)

        dnew = nb_t * gnew + (gamma * (new - c) if gamma > 0 else 0.0)
        fwd = new - flat + self.half_lr * Gm * drift
        bwd = flat - new + self.half_lr * Gm * dnew
        logq_fwd = -(fwd * fwd / Gm).sum(1) / (2 * lr)
        logq_bwd = -(bwd * bwd / Gm).sum(1) / (2 * lr)
        log_a = -U(Lnew, new) + U(L, flat) + logq_bwd - logq_fwd
        a = torch.exp(torch.clamp(log_a, max=0.0))
        return torch.where(torch.isfinite(a), a, torch.zeros_like(a))


class SGLD(LangevinKernel):
    name = "sgld"
    state_type = SGLDState

    def __init__(self, problem, settings):
        super().__init__(problem, settings)
        p = problem
        self.mala_every = int(settings.mala_every)
        self.plain = not self.mala_every and type(self) is SGLD
        # one ε and one nβ for every chain (the usual case): scalar coefficients, else one per chain.
        # w − (ε/2)(nβ g + γ(w − c)) + √ε ξ = (1 − εγ/2) w + (εγ/2) c − (εnβ/2) g + √ε ξ
        self.uniform = p.nb_uniform and all(v == p.lrs[0] for v in p.lrs)
        self.s_lr = math.sqrt(p.lrs[0])
        if self.uniform:
            self.c_g = -0.5 * p.lrs[0] * p.nbetas[0]
            self.c_w = 1.0 - 0.5 * p.lrs[0] * self.gamma
        else:
            self.c_g = -(self.half_lr * self.nb_t)            # (C, 1)
            self.c_w = 1.0 - self.half_lr * self.gamma        # (C, 1)
        self.c_term = (self.half_lr * self.gamma) * self.c    # (C, P), constant over steps
        self._bufs = self._views = None

    def preflight(self, health):
        if self.settings.check_stability:
            return stability_check(self.problem, health, self.settings.seed)
        return None

    # plain SGLD writes each new state into the other of two buffers, whose parameter views are
    # built once (no per-step allocation of the state or of its views)
    def _buffers(self, position):
        if self._bufs is None or not any(position is b for b in self._bufs):
            self._bufs = (position, torch.empty_like(position))
            self._views = tuple(self.problem.layout.views(b) for b in self._bufs)
        i = 0 if position is self._bufs[0] else 1
        return self._views[i], self._bufs[1 - i], self._views[1 - i]

    def _evaluate(self, position, views=None):
        xb, yb, xdim = self.problem.src.next_batch()
        L, g = self.problem.engine.loss_and_grad(position, xb, yb, xdim, views)
        return L, g, (xb, yb, xdim)

    def init(self, position):
        views = self._buffers(position)[0] if self.plain else None
        return SGLDState(position, *self._evaluate(position, views))

    def evaluate(self, state):
        views = self._buffers(state.position)[0] if self.plain else None
        L, g, batch = self._evaluate(state.position, views)
        return replace(state, loss=L, grad=g, batch=batch)

    def move(self, rng, state):
        if self.plain:
            return self._plain_step(rng, state), {}
        info = {}
        flat = state.position
        with torch.no_grad():
            noise = self.noise(rng, flat)
            gl, drift = self.drift(flat, state.grad)
            new, Gm, extra = self.propose(state, flat, gl, drift, noise)
            if self.mala_every and state.t % self.mala_every == 0:
                Lnew, gnew = self.problem.engine.loss_and_grad(new, *state.batch)
                info["acceptance"] = self.mh_acceptance(flat, state.loss, drift, new, Lnew, gnew, Gm)
        return type(state)(new, None, None, None, state.t + 1, **extra), info

    def propose(self, state, flat, gl, drift, noise):
        """The new position, the preconditioner and the extra state fields."""
        return flat - self.half_lr * drift + self.sqrt_lr * noise, 1.0, {}

    def _plain_step(self, rng, state):
        flat, g = state.position, state.grad
        _, new, _ = self._buffers(flat)
        with torch.no_grad():  # in place on the noise buffer (no temporaries)
            if self.uniform:  # √ε drawn with the noise: normal_(0, √ε) gives the same numbers as √ε·randn
                new.normal_(0.0, self.s_lr, generator=rng)
            else:
                new.normal_(generator=rng).mul_(self.sqrt_lr)
            _axpy(new, g, self.c_g)
            if self.gamma > 0:
                _axpy(new, flat, self.c_w).add_(self.c_term)
            else:
                new.add_(flat)
        return SGLDState(new, None, None, None, state.t + 1)


def _axpy(y: torch.Tensor, x: torch.Tensor, a) -> torch.Tensor:
    """y += a·x in place, for a scalar a or a per-chain (C, 1) tensor a."""
    return y.add_(x, alpha=a) if isinstance(a, float) else y.addcmul_(x, a)


def stability_check(p, health, seed: int = 0) -> float | None:
    """Pre-flight stability at w*: ε·(nβ·h_max + γ) < 4 per chain (the exact bound of SGLD on a
    quadratic: u ← (1 − εa/2)u + noise is stable iff εa < 4); chains beyond it are stopped at step 0,
    and a warning is given when the stiffest direction's variance is inflated noticeably."""
    from ..chains import StepSizeWarning
    from ..curvature import top_hessian_eigenvalue

    xh, yh = p.src.subsample(min(p.n, 2048))
    try:
        curvature = top_hessian_eigenvalue(p.engine, p.extra["flat_star"], xh, yh, seed=int(seed))
    except RuntimeError as exc:  # e.g. a module without double-backward support
        health.note(f"stability pre-check skipped (Hessian-vector products failed: {exc})")
        return None
    lrs, C = p.lrs, p.C
    a_maxs = [p.nbetas[ci] * curvature + p.gamma for ci in range(C)]
    for ci in range(C):
        ea = lrs[ci] * a_maxs[ci]
        if ea >= 4.0:
            health.stop_at_start(ci, f"lr·(nbeta·h_max + localization) = {lrs[ci]:.3g}·{a_maxs[ci]:.3g} = {ea:.3g} >= 4: "
                                     f"beyond the SGLD stability bound at w* (h_max = {curvature:.3g}, top Hessian eigenvalue of L_n)")
    ea_ok = [(lrs[ci] * a_maxs[ci], a_maxs[ci]) for ci in range(C) if health.alive[ci]]
    if ea_ok and max(ea_ok)[0] > 0.4:
        ea, a_max = max(ea_ok)
        health.warn(f"lr·(nbeta·h_max + localization) = {ea:.3g} at w*: the stiffest direction's variance is "
                    f"inflated by 1/(1 − εa/4) = {1 / (1 - ea / 4):.3g} (quadratic approximation); "
                    f"use a smaller lr (bound: 4/{a_max:.3g} = {4 / a_max:.3g})", StepSizeWarning)
    return curvature
