"""Batched layers: M networks with stacked parameters, applied, differentiated and linearised.

A layer maps a batch of activations h (M, N, n_in) — or inputs (N, n_in) shared by all M networks —
to (M, N, n_out).  Every layer has

* ``apply(ps, h, keep)`` → (out, ctx): the forward pass (differentiable by autograd); ``ctx`` holds
  what ``backward`` needs (only when ``keep``);
* ``backward(ps, ctx, delta, need_input)`` → (grads, delta_in): the manual chain rule for
  delta = ∂L/∂out (M, N, n_out), no autograd graph; ``delta_in`` is None unless ``need_input``;
* ``ntk_step(ps, ctx, H)``: the NTK forward equation (pdlt §5.1) through the layer, H (M, N1, N2, n, n)
  the empirical NTK of its input (None for the network input, which has no parameters below);
* ``kernel(K, Th, li=None)`` → (K', Θ'): its infinite-width kernel and frozen NTK map (PDLT §2,
  §5.2) on numpy arrays or tensors (Th None: no parameters below); the Gaussian integrals of an activation (closed forms per family) come in as ``li``
  (:func:`deepeft.theory.layer_integrals.layer_integrals`), so this module needs no quadrature;
* ``draw(randn)``: its trainable tensors from a stream of standard normals (``randn(shape)`` →
  (M, *shape)), in a fixed order; ``n_params``: how many parameter dicts it consumes.

``ps`` is the list of parameter dicts of the layer's Dense layers, in order.  Conventions: see
:mod:`deepeft.conventions` (W ~ N(0, C_W/n_in), b ~ N(0, C_b); in the 'ntk' parameterisation the
trainable tensors are ω, β ~ N(0, 1) with W = sqrt(C_W/n_in) ω, b = sqrt(C_b) β).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

from ..core.errors import ParameterError


def affine(h: torch.Tensor, W: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """b + h Wᵀ for stacked W (M, n_out, n_in), b (M, n_out) and h (M, N, n_in) or shared (N, n_in):
    one batched matmul (bmm / baddbmm when everything is stacked)."""
    batched = h.dim() == 3 and W.dim() == 3
    if b is None:
        return torch.bmm(h, W.mT) if batched else torch.matmul(h, W.mT)
    if batched and b.dim() == 2:
        return torch.baddbmm(b.unsqueeze(1), h, W.mT)
    return torch.matmul(h, W.mT) + b.unsqueeze(-2)


def _mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.bmm(a, b) if (a.dim() == 3 and b.dim() == 3) else torch.matmul(a, b)


def _add_diagonal(H: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """H[..., i, i] += c (in place): the δ_ij of a layer's own parameters."""
    idx = torch.arange(H.shape[-1], device=H.device)
    H[..., idx, idx] += c.unsqueeze(-1)
    return H


class Layer:
    n_params = 0

    def draw(self, randn) -> list[dict]:
        return []

    def rates(self) -> list[dict]:
        return []


class Dense(Layer):
    """z = b + W h.  ``scale_W``/``scale_b`` multiply the trainable tensors into W, b ('ntk':
    sqrt(C_W/n_in), sqrt(C_b); None: the trainable tensors are W, b themselves).  ``rate_W``/``rate_b``
    are per-parameter learning rates (:meth:`deepeft.core.spec.MLPSpec.per_parameter_rates`); the
    NTK adds λ_b + (λ_W/n_in) h·h on the diagonal: ``lambdas`` = (λ_W, λ_b), PDLT's learning-rate
    tensors (default: those the rates imply, λ_W = rate_W·n_in·scale_W², λ_b = rate_b·scale_b²).
    ``bias=False``: no b.  ``names``: the parameters' names in a model (for the samplers' engine)."""

    n_params = 1

    def __init__(self, n_in: int, n_out: int, *, C_W: float = 1.0, C_b: float = 0.0, scale_W: float | None = None,
                 scale_b: float | None = None, rate_W: float = 1.0, rate_b: float = 1.0, bias: bool = True,
                 lambdas: tuple[float, float] | None = None, names: tuple[str | None, str | None] | None = None):
        self.n_in, self.n_out = int(n_in), int(n_out)
        self.C_W, self.C_b = float(C_W), (float(C_b) if bias else 0.0)
        self.scale_W, self.scale_b = scale_W, scale_b
        self.rate_W, self.rate_b = float(rate_W), float(rate_b)
        self.bias = bool(bias)
        self.lambdas = lambdas
        self.names = names
        self.grad_of = ("W", "b") if self.bias else ("W",)  # which gradients backward forms

    # -- parameters ------------------------------------------------------------------------------
    def draw(self, randn) -> list[dict]:
        """ω (M, n_out, n_in) then β (M, n_out) ~ N(0, 1); W = sqrt(C_W/n_in) ω and b = sqrt(C_b) β,
        returned as the trainable tensors (ω, β where the layer scales them)."""
        omega = randn((self.n_out, self.n_in))
        beta = randn((self.n_out,)) if self.bias else None
        W = omega if self.scale_W is not None else omega * math.sqrt(self.C_W / self.n_in)
        if beta is None:
            return [{"W": W}]
        b = beta if self.scale_b is not None else beta * math.sqrt(self.C_b)
        return [{"W": W, "b": b}]

    def weights(self, p: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The actual (W, b) of trainable tensors p."""
        W = p["W"] if self.scale_W is None else p["W"] * self.scale_W
        b = p.get("b") if self.bias else None
        if b is not None and self.scale_b is not None:
            b = b * self.scale_b
        return W, b

    def rates(self) -> list[dict]:
        return [{"W": self.rate_W, "b": self.rate_b} if self.bias else {"W": self.rate_W}]

    def ntk_lambdas(self) -> tuple[float, float]:
        """(λ_W, λ_b) of PDLT's NTK (those these per-parameter rates give)."""
        if self.lambdas is not None:
            return self.lambdas
        sw2 = 1.0 if self.scale_W is None else self.scale_W ** 2
        sb2 = 1.0 if self.scale_b is None else self.scale_b ** 2
        return self.rate_W * self.n_in * sw2, (self.rate_b * sb2 if self.bias else 0.0)

    # -- kernels (infinite width) -------------------------------------------------------------------
    def kernel(self, K, Th=None, li=None):
        """Infinite width (PDLT §2, §5.2): from the covariance K of each input component (x·x/n_0 for
        network inputs, ⟨σσ⟩ after an activation) and its NTK Th (None: no parameters below),
        K' = C_b + C_W K and Θ' = λ_b + λ_W K + C_W Th."""
        return self.kernel_from(K, None, Th)

    def kernel_from(self, G, Gp=None, Th=None):
        """K' = C_b + C_W G, Θ' = λ_b + λ_W G + C_W G'∘Θ (the Act ∘ Dense block, with G = ⟨σσ⟩_K,
        G' = ⟨σ'σ'⟩_K and Θ the NTK below; Gp None: Th is already the NTK of the input)."""
        lw, lb = self.ntk_lambdas()
        K = self.C_b + self.C_W * G
        if Th is None:
            return K, lb + lw * G
        return K, (lb + lw * G + self.C_W * Th if Gp is None else lb + lw * G + self.C_W * Gp * Th)

    def susceptibilities(self, li):
        """(χ_∥, χ_⊥) with this layer's C_W (PDLT §3), for σ of the layer below."""
        return self.C_W * li.dg, self.C_W * li.gp

    def input_gram(self, x1, x2=None):
        """x1·x2/n_0: the Gram of network inputs that the first layer's kernel starts from."""
        return x1 @ (x1 if x2 is None else x2).T / self.n_in

    # -- forward / backward ------------------------------------------------------------------------
    def apply(self, ps, h, keep=False):
        W, b = self.weights(ps[0])
        return affine(h, W, b), ((h, W, b) if keep else None)

    def backward(self, ps, ctx, delta, need_input=True):
        """∂L/∂W = δᵀh, ∂L/∂b = Σ_batch δ (times the scale for trainable ω, β); δ_in = δ W."""
        h, W = ctx[0], ctx[1]
        g = {}
        if "W" in self.grad_of:
            g["W"] = _mm(delta.mT, h) if self.scale_W is None else _mm(delta.mT, h) * self.scale_W
        if "b" in self.grad_of:
            g["b"] = delta.sum(-2) if self.scale_b is None else delta.sum(-2) * self.scale_b
        return [g], (_mm(delta, W) if need_input else None)

    # -- NTK ---------------------------------------------------------------------------------------
    def own_ntk(self, h1: torch.Tensor, h2: torch.Tensor | None = None) -> torch.Tensor:
        """λ_b + (λ_W/n_in) h1·h2: the NTK contribution of this layer's own parameters (× δ_ij)."""
        lw, lb = self.ntk_lambdas()
        h2 = h1 if h2 is None else h2
        return lb + (lw / self.n_in) * torch.matmul(h1, h2.mT)

    def conditional_covariance(self, h: torch.Tensor) -> torch.Tensor:
        """Ĝ = C_b + (C_W/n_in) h·hᵀ: the covariance over inputs of every output component given
        the input h (pdlt §1: b and W are independent of everything below)."""
        return self.C_b + (self.C_W / self.n_in) * torch.matmul(h, h.mT)

    def linearise(self, ps, ctx, ctx2=None):
        """(J1, J2, c): per-input Jacobians ∂out/∂in (M, N, n_out, n_in) and own-parameter NTK c."""
        h, W = ctx[0], ctx[1]
        J = W.unsqueeze(-3) if W.dim() == 3 else W
        c = self.own_ntk(h, None if ctx2 is None else ctx2[0])
        return J, J, c

    def ntk_step(self, ps, ctx, H, ctx2=None):
        h, W = ctx[0], ctx[1]
        c = self.own_ntk(h, None if ctx2 is None else ctx2[0])
        if H is None:  # first layer: Ĥ_{ij} = δ_ij [λ_b + (λ_W/n_0) x·x]
            eye = torch.eye(self.n_out, dtype=c.dtype, device=c.device)
            return c[..., None, None] * eye
        Wb = W.unsqueeze(-3).unsqueeze(-3)
        H = torch.matmul(torch.matmul(Wb, H), Wb.mT)
        return _add_diagonal(H, c)


class Act(Layer):
    """Elementwise σ.  ``activation``: a :class:`deepeft.core.activations.Activation` (σ' by its slopes
    or autograd) or any elementwise callable with ``derivative(h, a)`` → σ'(h) given a = σ(h)."""

    def __init__(self, activation, derivative: Callable | None = None):
        from ..core.activations import Activation

        self.activation = activation
        if isinstance(activation, Activation):
            self.fn, self._both = activation.fn, activation.value_and_derivative
        elif derivative is None:
            raise ParameterError("derivative", None, "σ'(h, σ(h)) for an activation that is not a deepeft Activation")
        else:
            def both(h):
                a = activation(h)
                return a, derivative(h, a)
            self.fn, self._both = activation, both

    def apply(self, ps, h, keep=False):
        """``keep='values'`` keeps (h, σ(h), None) without computing σ'."""
        if not keep:
            return self.fn(h), None
        if keep == "values":
            a = self.fn(h)
            return a, (h, a, None)
        a, d = self._both(h)
        return a, (h, a, d)

    def backward(self, ps, ctx, delta, need_input=True):
        return [], delta * ctx[2]

    def integrals(self, K, **kw):
        """The Gaussian integral tables of σ at K (:func:`deepeft.theory.layer_integrals.layer_integrals`)."""
        from ..theory.layer_integrals import layer_integrals

        return layer_integrals(self.activation, K, **kw)

    def kernel(self, K, Th=None, li=None):
        """(⟨σσ⟩_K, ⟨σ'σ'⟩_K ∘ Θ) at infinite width (PDLT §2, §5.2)."""
        li = self.integrals(K, derivatives=False) if li is None else li
        return li.G, (None if Th is None else li.Gp * Th)

    def linearise(self, ps, ctx, ctx2=None):
        raise ParameterError("layer", "Act", "a layer list whose activations are followed by a Dense layer "
                             "(the NTK forward equation linearises Act ∘ Dense blocks)")

    def ntk_step(self, ps, ctx, H, ctx2=None):
        d1 = ctx[2]
        d2 = d1 if ctx2 is None else ctx2[2]
        return H * d1[..., :, None, :, None] * d2[..., None, :, None, :]


class Serial(Layer):
    """Layers applied one after another."""

    def __init__(self, layers: Sequence[Layer]):
        self.layers = list(layers)
        self.n_params = sum(l.n_params for l in self.layers)

    def _split(self, ps):
        out, i = [], 0
        for l in self.layers:
            out.append(ps[i:i + l.n_params])
            i += l.n_params
        return out

    def draw(self, randn):
        return [p for l in self.layers for p in l.draw(randn)]

    def rates(self):
        return [r for l in self.layers for r in l.rates()]

    def apply(self, ps, h, keep=False):
        ctxs = []
        for l, p in zip(self.layers, self._split(ps)):
            h, c = l.apply(p, h, keep)
            ctxs.append(c)
        return h, (ctxs if keep else None)

    def backward(self, ps, ctx, delta, need_input=True):
        """Reverse pass; below the lowest layer with parameters nothing is propagated unless asked."""
        split = self._split(ps)
        lowest = next((i for i, l in enumerate(self.layers) if l.n_params), len(self.layers))
        grads: list = []
        for i in range(len(self.layers) - 1, -1, -1):
            if i < lowest and not need_input:
                break
            g, delta = self.layers[i].backward(split[i], ctx[i], delta, need_input=need_input or i > lowest)
            grads = g + grads
        return grads, (delta if need_input else None)

    @property
    def dense(self) -> Dense:
        """The block's Dense layer (Act ∘ Dense)."""
        return self.layers[-1]

    def kernel(self, K, Th=None, li=None):
        """The layers' maps one after another; an Act ∘ Dense block in one step,
        K' = C_b + C_W⟨σσ⟩_K, Θ' = λ_b + λ_W⟨σσ⟩ + C_W⟨σ'σ'⟩∘Θ, with ``li`` the tables of σ at K."""
        if self._is_block():
            li = self.layers[0].integrals(K, derivatives=False) if li is None else li
            return self.dense.kernel_from(li.G, li.Gp, Th)
        for layer in self.layers:
            K, Th = layer.kernel(K, Th)
        return K, Th

    def susceptibilities(self, li):
        """(χ_∥, χ_⊥) = (C_W d⟨σ²⟩/dK, C_W⟨σ'²⟩) (PDLT §3) with this block's C_W."""
        cw = self.dense.C_W
        return cw * li.dg, cw * li.gp

    def _is_block(self) -> bool:
        return len(self.layers) == 2 and isinstance(self.layers[0], Act) and isinstance(self.layers[1], Dense)

    def linearise(self, ps, ctx, ctx2=None):
        """Act ∘ Dense: J_α = W diag σ'_α (one Jacobian per input), c from σ (pdlt §5.1)."""
        if not self._is_block():
            raise ParameterError("layer", "Serial", "Act followed by Dense to be linearised (residual branch)")
        (_, _, d1), dense_ctx = ctx
        d2 = d1 if ctx2 is None else ctx2[0][2]
        W = dense_ctx[1]
        c = self.layers[1].own_ntk(dense_ctx[0], None if ctx2 is None else ctx2[1][0])
        J1 = W.unsqueeze(-3) * d1.unsqueeze(-2)
        J2 = J1 if ctx2 is None else W.unsqueeze(-3) * d2.unsqueeze(-2)
        return J1, J2, c

    def ntk_step(self, ps, ctx, H, ctx2=None):
        if self._is_block() and H is not None:
            J1, J2, c = self.linearise(ps, ctx, ctx2)
            return _jhj(J1, J2, H, c)
        for l, p, c1, c2 in zip(self.layers, self._split(ps), ctx, ctx2 or [None] * len(ctx)):
            H = l.ntk_step(p, c1, H, c2)
        return H


def _jhj(J1, J2, H, c):
    """J1 Ĥ J2ᵀ + δ c, batched over networks and input pairs: (M, N1, N2, n, n)."""
    tmp = torch.matmul(J1.unsqueeze(-3), H)
    H = torch.matmul(tmp, J2.unsqueeze(-4).transpose(-1, -2))
    return _add_diagonal(H, c)


class Residual(Layer):
    """z' = ξ z + γ f(z) (ξ ≥ 0 the skip, γ > 0 the branch f; needs n_in = n_out)."""

    def __init__(self, branch: Layer, xi: float, gamma: float):
        self.branch, self.xi, self.gamma = branch, float(xi), float(gamma)
        self.n_params = branch.n_params

    def draw(self, randn):
        return self.branch.draw(randn)

    def rates(self):
        return self.branch.rates()

    def apply(self, ps, h, keep=False):
        out, ctx = self.branch.apply(ps, h, keep)
        return self.xi * h + self.gamma * out, ctx

    def backward(self, ps, ctx, delta, need_input=True):
        grads, d_in = self.branch.backward(ps, ctx, self.gamma * delta, need_input=need_input)
        return grads, (self.xi * delta + d_in if need_input else None)

    @property
    def dense(self) -> Dense:
        return self.branch.dense if isinstance(self.branch, Serial) else self.branch

    def kernel(self, K, Th=None, li=None):
        """K' = ξ²K + γ² K_f, Θ' = ξ²Θ + γ² Θ_f (infinite width: the branch's fresh weights are
        uncorrelated with the skip)."""
        xi2, ga2 = self.xi ** 2, self.gamma ** 2
        Kb, Tb = self.branch.kernel(K, Th, li)
        return xi2 * K + ga2 * Kb, (ga2 * Tb if Th is None else xi2 * Th + ga2 * Tb)

    def susceptibilities(self, li):
        xi2, ga2, cw = self.xi ** 2, self.gamma ** 2, self.dense.C_W
        return xi2 + ga2 * cw * li.dg, xi2 + ga2 * cw * li.gp

    def linearise(self, ps, ctx, ctx2=None):
        """J = ξ I + γ J_f and γ² c_f."""
        J1, J2, c = self.branch.linearise(ps, ctx, ctx2)
        eye = torch.eye(J1.shape[-1], dtype=J1.dtype, device=J1.device)
        J1 = self.gamma * J1 + self.xi * eye
        J2 = J1 if ctx2 is None else self.gamma * J2 + self.xi * eye
        return J1, J2, c * self.gamma ** 2

    def ntk_step(self, ps, ctx, H, ctx2=None):
        J1, J2, c = self.linearise(ps, ctx, ctx2)
        return _jhj(J1, J2, H, c)


def serial(*layers: Layer) -> Serial:
    """Compose layers (nested lists are flattened one level)."""
    flat = []
    for l in layers:
        flat.extend(l if isinstance(l, (list, tuple)) else [l])
    return Serial(flat)
