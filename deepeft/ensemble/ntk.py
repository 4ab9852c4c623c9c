"""Empirical neural tangent kernels: of any ``nn.Module``, and of every network of an ensemble.

NTK of a model with parameters θ_μ and per-parameter learning rates λ_μ (conventions: PDLT Θ has
λ_b for biases and λ_W/n_{l-1} per weight, expressed per raw parameter by
``MLPSpec.per_parameter_rates``)::

    Ĥ_{ab;αβ} = Σ_μ λ_μ ∂f_a(x_α)/∂θ_μ ∂f_b(x_β)/∂θ_μ

Two ways with ``torch.func`` (choose by cost, ``method='auto'``):

* ``'jacobian'``: per-sample Jacobians (vmap ∘ jacrev), then a contraction over parameters.
  Cost ≈ 3(N1+N2)·O·P + (N1·N2·O²·P for 'full' | N1·N2·O·P otherwise); memory (N1+N2)·O·P.
* ``'ntk_vp'``: NTK-vector products, vjp on x2 then jvp on x1 for every output basis vector of x2
  (never forms a Jacobian).  Cost ≈ N2·O·(2·N2 + 3·N1)·P; memory ≈ activations.

For MLP ensembles there is also the exact NTK forward equation (pdlt §5.1)::

    Ĥ^(l+1)_{αβ} = δ[λ_b + (λ_W/n_l) σ_α·σ_β] + J_α Ĥ^(l)_{αβ} J_βᵀ,   J_α = W diag(σ'_α)

(residual layers z' = ξz + γ(b + Wσ): J_α = ξ I + γ W diag σ'_α and the δ-term is multiplied by γ²),
batched over networks and inputs with no autograd.
"""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn
from torch.func import functional_call, jacrev, jvp, vjp, vmap

from ..core.errors import ParameterError
from ..core.spec import MLPSpec
from ..nets.mlp import BatchedMLP, spec_layers

COMPUTE = ("full", "trace", "diagonal")
NTK_METHODS = ("auto", "jacobian", "ntk_vp")


# ----------------------------------------------------------------------------------------------
# any nn.Module
# ----------------------------------------------------------------------------------------------
def _as_batch(x, name: str, like: torch.Tensor) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(x, dtype=like.dtype, device=like.device)
        except (TypeError, ValueError, RuntimeError):
            raise ParameterError(name, type(x).__name__, "a tensor of shape (batch, ...)") from None
    if x.dim() < 1 or x.shape[0] < 1:
        raise ParameterError(name, f"shape {tuple(x.shape)}", "a tensor of shape (batch, ...) with batch >= 1")
    return x


def ntk_cost(n1: int, n2: int, n_out: int, n_params: int, compute: str) -> dict[str, float]:
    """Rough FLOP and memory (elements) estimates of the two methods (see module docstring)."""
    contraction = n1 * n2 * n_out * n_out * n_params if compute == "full" else n1 * n2 * n_out * n_params
    return {
        "jacobian_flops": 3.0 * (n1 + n2) * n_out * n_params + 2.0 * contraction,
        "jacobian_memory": float((n1 + n2) * n_out * n_params),
        "ntk_vp_flops": float(n2 * n_out * (2 * n2 + 3 * n1) * n_params),
    }


def empirical_ntk(model: nn.Module, x1, x2=None, compute: str = "full", *, method: str = "auto",
                  rates: Mapping[str, float] | None = None, memory_limit_elements: int = 2**27) -> torch.Tensor:
    """Empirical NTK of any ``nn.Module`` at its current parameters.

    x1: (N1, ...) inputs; x2: (N2, ...) or None (= x1).  The model maps a batch to (batch, *out);
    outputs are flattened to O = prod(out).  Only parameters with ``requires_grad`` count.
    compute: 'full' → (N1, N2, O, O);  'trace' → (N1, N2) = Σ_a Ĥ_{aa};  'diagonal' → (N1, N2, O).
    rates: optional per-parameter learning rates {parameter name: λ} (missing names: 1).
    method: 'jacobian', 'ntk_vp' or 'auto' (cheaper by :func:`ntk_cost`, Jacobians only if they fit
    in ``memory_limit_elements``).
    """
    if not isinstance(model, nn.Module):
        raise ParameterError("model", type(model).__name__, "a torch.nn.Module")
    if compute not in COMPUTE:
        raise ParameterError("compute", compute, "'full', 'trace' or 'diagonal'")
    if method not in NTK_METHODS:
        raise ParameterError("method", method, "'auto', 'jacobian' or 'ntk_vp'")
    params = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}
    if not params:
        raise ParameterError("model", type(model).__name__,
                             "a module with at least one parameter that requires grad (the NTK is a sum over "
                             "trainable parameters; this module has none — check requires_grad)")
    for k, v in params.items():
        if not (v.is_floating_point() or v.is_complex()):
            raise ParameterError(f"parameter {k!r}", str(v.dtype), "a floating-point tensor (non-differentiable dtype)")
    ref = next(iter(params.values()))
    x1 = _as_batch(x1, "x1", ref)
    x2 = x1 if x2 is None else _as_batch(x2, "x2", ref)
    rates = dict(rates or {})
    unknown = set(rates) - set(params)
    if unknown:
        raise ParameterError("rates", sorted(unknown), "names of trainable parameters: " + ", ".join(params))
    buffers = {k: v.detach() for k, v in model.named_buffers()}

    def f_single(p, x):
        out = functional_call(model, (p, buffers), (x.unsqueeze(0),))
        return out.reshape(-1)

    with torch.no_grad():
        out0 = f_single(params, x1[0])
    n_out = out0.numel()
    P = sum(v.numel() for v in params.values())
    cost = ntk_cost(x1.shape[0], x2.shape[0], n_out, P, compute)
    if method == "auto":
        fits = cost["jacobian_memory"] <= memory_limit_elements
        method = "jacobian" if fits and cost["jacobian_flops"] <= cost["ntk_vp_flops"] else "ntk_vp"
        if not fits and cost["ntk_vp_flops"] <= 0:
            method = "jacobian"
    if method == "jacobian":
        return _ntk_jacobian(f_single, params, x1, x2, compute, rates)
    return _ntk_vp(f_single, params, x1, x2, compute, rates, n_out)


def _ntk_jacobian(f_single, params, x1, x2, compute, rates):
    jac = vmap(jacrev(f_single), (None, 0))
    j1 = jac(params, x1)
    j2 = j1 if x2 is x1 else jac(params, x2)
    eq = {"full": "Naf,Mbf->NMab", "trace": "Naf,Maf->NM", "diagonal": "Naf,Maf->NMa"}[compute]
    total = None
    for k in params:
        a = j1[k].flatten(2)
        b = j2[k].flatten(2)
        term = torch.einsum(eq, a, b) * rates.get(k, 1.0)
        total = term if total is None else total + term
    return total


def _ntk_vp(f_single, params, x1, x2, compute, rates, n_out):
    def f_batch(p, x):
        return vmap(f_single, (None, 0))(p, x)  # (batch, O)

    def on_x1(p):
        return f_batch(p, x1)

    def on_x2(p):
        return f_batch(p, x2)

    _, vjp_fn = vjp(on_x2, params)

    def column(vec):  # vec: (N2, O) basis vector → Σ_μ λ_μ J1_μ (J2ᵀ vec)_μ : (N1, O)
        (g,) = vjp_fn(vec)
        g = {k: v * rates.get(k, 1.0) for k, v in g.items()}
        _, t = jvp(on_x1, (params,), (g,))
        return t

    N2 = x2.shape[0]
    basis = torch.eye(N2 * n_out, dtype=x1.dtype if x1.is_floating_point() else torch.float32,
                      device=x1.device).view(N2 * n_out, N2, n_out)
    cols = vmap(column)(basis)  # (N2*O, N1, O)
    full = cols.reshape(N2, n_out, x1.shape[0], n_out).permute(2, 0, 3, 1)  # (N1, N2, a, b)
    if compute == "full":
        return full
    dg = torch.diagonal(full, dim1=-2, dim2=-1)
    return dg.sum(-1) if compute == "trace" else dg


# ----------------------------------------------------------------------------------------------
# MLP ensembles
# ----------------------------------------------------------------------------------------------
def ntk_first_layer(spec: MLPSpec, x: torch.Tensor) -> torch.Tensor:
    """Ĥ^(1)_{ij;αβ} = δ_ij [λ_b + (λ_W/n_0) x_α·x_β]  as (N, N, n_1, n_1)."""
    return spec_layers(spec)[0].ntk_step([None], (x, None, None), None)


def ntk_forward_step(spec: MLPSpec, l: int, H_prev: torch.Tensor, W: torch.Tensor, sigma: torch.Tensor,
                     dsigma: torch.Tensor) -> torch.Tensor:
    """One step of the NTK forward equation (pdlt §5.1), layer l-1 → l (l ≥ 2), batched, by block l
    of the spec's layer list (:func:`deepeft.nets.spec_layers`).

    H_prev: (M, N, N, n_{l-1}, n_{l-1}) or (N, N, n, n); W: (M, n_l, n_{l-1}); σ, σ': (M, N, n_{l-1}).
    Returns (M, N, N, n_l, n_l)."""
    ctx = [(None, sigma, dsigma), (sigma, W, None)]  # the contexts of Act and Dense in the block
    return spec_layers(spec)[l - 1].ntk_step([None], ctx, H_prev)


def ensemble_ntk_autograd(spec: MLPSpec, x: torch.Tensor, Ws: list[torch.Tensor], bs: list[torch.Tensor]) -> list[torch.Tensor]:
    """Ĥ^(l) (M, N, N, n_l, n_l) of every layer and network by torch.func (vmap over networks of
    per-network Jacobians of :meth:`deepeft.nets.BatchedMLP.preactivations`), weighted with
    ``spec.per_parameter_rates``.  Cross-checks the forward equation; cost grows like Σ_l n_l·N·P
    per network.  Ws, bs: the actual weights and biases of every layer (M, n_l, n_{l-1}), (M, n_l)."""
    net = BatchedMLP(spec, x.device, x.dtype)
    params = net.trainable(Ws, bs)
    rates = net.rates()

    def per_network(p):
        jac = jacrev(net.preactivations)(p, x)  # list over layers of [list over layers of {W, b}]
        Hs = []
        for l, jl in enumerate(jac, start=1):
            H = None
            for jp, rp in zip(jl, rates):
                for name in ("W", "b"):
                    if rp[name] == 0.0:
                        continue
                    Jf = jp[name].flatten(2)  # (N, n_l, P)
                    term = torch.einsum("aip,bjp->abij", Jf, Jf) * rp[name]
                    H = term if H is None else H + term
            if H is None:
                n = spec.width(l)
                H = torch.zeros(x.shape[0], x.shape[0], n, n, dtype=x.dtype, device=x.device)
            Hs.append(H)
        return Hs

    return vmap(per_network)(params)
