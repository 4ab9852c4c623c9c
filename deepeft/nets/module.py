"""BatchedModule: any ``nn.Module`` evaluated for C parameter vectors at once (the samplers' engine).

The parameters of C copies ("chains") are one flat (C, P) tensor laid out by a ``ParamLayout``
(:mod:`deepeft.bayes.samplers`: ``names``, ``views(flat)``, ``frozen``, ``index``).  In general
the per-chain losses are ``vmap(functional_call(model, …))`` and gradients come from autograd.  A
plain ``nn.Sequential`` of ``nn.Linear`` and elementwise activations is instead turned into a
:mod:`deepeft.nets.layers` list (``Dense`` + ``Act``) and run by the same batched forward and
manual backward as :class:`deepeft.nets.BatchedMLP`: every Linear is one batched matmul on views
of the flat tensor, and the gradient is the chain rule without an autograd graph.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.func import functional_call, vmap

from .layers import Act, Dense, Serial

_ELEMENTWISE = (nn.Tanh, nn.ReLU, nn.Sigmoid, nn.GELU, nn.SiLU, nn.Identity, nn.LeakyReLU, nn.ELU, nn.Softplus,
                nn.Mish, nn.Hardtanh, nn.ReLU6, nn.Tanhshrink, nn.Softsign)


def sequential_plan(model: nn.Module):
    """For an ``nn.Sequential`` of Linear layers and elementwise activations (exact types, no hooks),
    the list of (kind, module, weight name, bias name) the chains-batched forward walks; else None."""
    from torch.nn.modules import module as _mm

    if type(model) is not nn.Sequential or model._forward_hooks or model._forward_pre_hooks:
        return None
    if any(getattr(_mm, h, None) for h in ("_global_forward_hooks", "_global_forward_pre_hooks",
                                            "_global_forward_hooks_with_kwargs")):
        return None
    plan = []
    for name, m in model.named_children():
        if m._forward_hooks or m._forward_pre_hooks or list(m.buffers()):
            return None
        if type(m) is nn.Linear:
            plan.append(("linear", m, f"{name}.weight", None if m.bias is None else f"{name}.bias"))
        elif type(m) in _ELEMENTWISE:
            plan.append(("act", m, None, None))
        else:
            return None
    return plan if any(k == "linear" for k, *_ in plan) else None


def axpy(y: torch.Tensor, x: torch.Tensor, a) -> torch.Tensor:
    """y += a·x in place, for a scalar a or a per-chain (C, 1) tensor a."""
    return y.add_(x, alpha=a) if isinstance(a, float) else y.addcmul_(x, a)


def activation_derivative(mod: nn.Module, h: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """σ'(h) of an elementwise activation module (a = σ(h)); closed forms where cheap, else autograd
    of the elementwise op."""
    from ..core.activations import value_and_grad_elementwise

    t = type(mod)
    if t is nn.Tanh:
        return 1.0 - a * a
    if t is nn.Sigmoid:
        return a * (1.0 - a)
    if t is nn.ReLU:
        return (h > 0).to(h.dtype)
    if t is nn.Identity:
        return torch.ones_like(h)
    if t is nn.LeakyReLU:
        return torch.where(h > 0, torch.ones_like(h), torch.full_like(h, mod.negative_slope))
    return value_and_grad_elementwise(mod, h)[1]


def sequential_layers(plan, sampled) -> Serial:
    """A :func:`sequential_plan` as a nets layer list; gradients only of the ``sampled`` names."""
    layers = []
    for kind, mod, wname, bname in plan:
        if kind == "act":
            layers.append(Act(mod, lambda h, a, mod=mod: activation_derivative(mod, h, a)))
            continue
        d = Dense(mod.in_features, mod.out_features, bias=bname is not None, names=(wname, bname))
        d.grad_of = tuple(k for k, n in (("W", wname), ("b", bname)) if n is not None and n in sampled)
        layers.append(d)
    return Serial(layers)


class BatchedModule:
    """Holds the vmapped loss for a model/data/loss and evaluates it on flat chain tensors.

    ``loss_grads``: {loss function: closed-form (L, dL/d out)} for built-in losses (class attribute)."""

    loss_grads: dict[Callable, Callable] = {}

    def __init__(self, model, layout, loss_fn):
        self.model = model
        self.layout = layout
        self.loss_fn = loss_fn

        def single(pdict, x, y):
            out = functional_call(model, (pdict, layout.frozen), (x,))
            return loss_fn(out, y)

        self.single = single
        self._vm = {}
        self._vm_loss = {}
        self.fast = sequential_plan(model)
        if self.fast is not None:
            self.net = sequential_layers(self.fast, set(layout.names))
            self._dense = [l for l in self.net.layers if isinstance(l, Dense)]
        self.loss_grad = self.loss_grads.get(loss_fn)  # closed-form (L, dL/d out) of a built-in loss

    def batched(self, xdim):
        key = xdim
        if key not in self._vm:
            s = self.single
            self._vm[key] = vmap(s, in_dims=(0, xdim, xdim))
        return self._vm[key]

    def _params(self, pdict) -> list[dict]:
        frozen = self.layout.frozen
        ps = []
        for d in self._dense:
            wname, bname = d.names
            p = {"W": pdict[wname] if wname in pdict else frozen[wname]}
            if bname is not None:
                p["b"] = pdict[bname] if bname in pdict else frozen[bname]
            ps.append(p)
        return ps

    def _fast_forward(self, pdict, x, keep: bool = False):
        """Chains-batched forward of a plain ``nn.Sequential`` (the same function as the vmapped
        ``functional_call``; tests compare the two) through :mod:`deepeft.nets.layers`."""
        return self.net.apply(self._params(pdict), x, keep)

    def _chain_loss(self, xdim, y):
        """The user loss vmapped over chains (targets shared when x is shared)."""
        ydim = None if (xdim is None or y is None) else 0
        if ydim not in self._vm_loss:
            self._vm_loss[ydim] = vmap(self.loss_fn, in_dims=(0, ydim))
        return self._vm_loss[ydim]

    def _fast_losses(self, pdict, x, y, xdim):
        h, _ = self._fast_forward(pdict, x)
        if self.loss_grad is not None and y is not None:
            r = self.loss_grad(h, y)
            if r is not None:
                return r[0]
        return self._chain_loss(xdim, y)(h, y)

    def _manual_loss_and_grad(self, flat, x, y, xdim, views=None):
        """Losses and (chains, P) gradient of a plain ``nn.Sequential`` by explicit backpropagation:
        batched matmuls forward, dL/d output in closed form for the built-in losses (autograd on a
        user loss), then :meth:`deepeft.nets.layers.Serial.backward` (∂L/∂W = δᵀh, ∂L/∂b = Σ_batch δ,
        δ ← δW, δ ← δ·σ'(h)), concatenated into the flat gradient.  Same numbers as autograd through
        the network (tested), without building a graph over the network every step."""
        f = flat.detach()
        pdict = self.layout.views(f) if views is None else views
        ps = self._params(pdict)
        h, ctx = self.net.apply(ps, x, keep=True)
        r = self.loss_grad(h, y) if (self.loss_grad is not None and y is not None) else None
        if r is not None:
            L, delta = r
        else:
            out = h.detach().requires_grad_(True)
            with torch.enable_grad():
                L = self._chain_loss(xdim, y)(out, y)
                (delta,) = torch.autograd.grad(L.sum(), out)
        grads, _ = self.net.backward(ps, ctx, delta, need_input=False)
        index = self.layout.index
        parts: list = [None] * len(self.layout.names)
        for d, g in zip(self._dense, grads):
            for k, name in zip(("W", "b"), d.names):
                if k in g:
                    parts[index[name]] = g[k]
        C = f.shape[0]
        # every sampled tensor of a plain Sequential is a Linear weight or bias, so every part is set
        return L.detach(), torch.cat([p_.reshape(C, -1) for p_ in parts], dim=-1)

    def _fast_ok(self, flat, x, xdim):
        return (self.fast is not None and flat.dim() == 2
                and ((xdim == 0 and x.dim() == 3) or (xdim is None and x.dim() == 2)))

    def _losses_dict(self, pdict, flat, x, y, xdim):
        if self._fast_ok(flat, x, xdim):
            return self._fast_losses(pdict, x, y, xdim)
        return self.batched(xdim)(pdict, x, y)

    def losses(self, flat, x, y, xdim):
        return self._losses_dict(self.layout.views(flat), flat, x, y, xdim)

    def loss_and_grad(self, flat, x, y, xdim, views=None):
        """Per-chain losses and the (chains, P) gradient (``views``: ``layout.views(flat)``, if
        the caller keeps them).

        The parameters enter as leaf tensors that are views of (a detached alias of) ``flat`` —
        no copy — and the gradient is differentiated with respect to those leaves and concatenated
        once, instead of through a slice of a flat leaf (whose backward would materialise a zero
        (chains, P) tensor per parameter).
        """
        if self._fast_ok(flat, x, xdim):
            return self._manual_loss_and_grad(flat, x, y, xdim, views)
        f = flat.detach()
        views = self.layout.views(f)
        leaves = {k: v.detach().requires_grad_(True) for k, v in views.items()}
        with torch.enable_grad():
            L = self._losses_dict(leaves, f, x, y, xdim)
            grads = torch.autograd.grad(L.sum(), list(leaves.values()), allow_unused=True)
        lead = flat.shape[:-1]
        g = torch.cat([(torch.zeros_like(v) if gi is None else gi).reshape(*lead, -1)
                       for gi, v in zip(grads, leaves.values())], dim=-1)
        return L.detach(), g

    def full_loss(self, flat, data, chunk, grad=False):
        """Exact L_n (and its gradient) for every chain, accumulated over data chunks."""
        tot, gtot, n = None, None, 0
        for x, y, w in data.chunks(chunk):
            if grad:
                L, g = self.loss_and_grad(flat, x, y, None)
                gtot = g * w if gtot is None else gtot + g * w
            else:
                with torch.no_grad():
                    L = self.losses(flat, x, y, None)
            tot = L * w if tot is None else tot + L * w
            n += w
        if grad:
            return tot / n, gtot / n
        return tot / n
