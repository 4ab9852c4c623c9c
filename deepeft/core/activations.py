"""Activation functions: name → callable, derivatives of any order, class hooks.

Every activation is a torch function applied elementwise (used by the networks and, in float64,
by the Gaussian integrals).  Derivatives of smooth activations come from autograd, never from
finite differences.  Scale-invariant activations σ(z) = a₊z (z ≥ 0), a₋z (z < 0) (linear, ReLU,
leaky ReLU, abs) carry (a₊, a₋) so that every Gaussian integral of them is done in closed form
(their σ'' is a delta function, which quadrature cannot see).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from .errors import ParameterError

TorchFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True, eq=False)
class Activation:
    """An elementwise activation σ.

    name: canonical name (``'relu'``, ``'tanh'``, ``'leaky_relu:0.1'``, or ``'custom:<repr>'``).
    fn: torch function, elementwise, any dtype/device.
    slopes: (a₊, a₋) for scale-invariant activations, else None.
    closed_form: name of a closed-form family for two-point integrals (``'erf'``) or None.
    smooth: whether σ is C^∞ (Gauss–Hermite quadrature converges geometrically).
    """

    name: str
    fn: TorchFn
    slopes: tuple[float, float] | None = None
    closed_form: str | None = None
    smooth: bool = True
    scale: float = 1.0  # for 'erf' family: σ(z) = erf(scale·z)
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    # -- evaluation ------------------------------------------------------------------------
    def __call__(self, z):
        if isinstance(z, torch.Tensor):
            return self.fn(z)
        t = torch.as_tensor(np.asarray(z, dtype=np.float64))
        with torch.no_grad():
            return self.fn(t).numpy()

    @property
    def scale_invariant(self) -> bool:
        return self.slopes is not None

    def derivative(self, z, order: int = 1) -> np.ndarray:
        """d^order σ/dz^order at z (numpy float64).  For scale-invariant σ the distributional
        parts (delta functions at 0) are omitted: integrals handle them analytically."""
        z = np.asarray(z, dtype=np.float64)
        if order == 0:
            return self(z)
        if self.slopes is not None:
            ap, am = self.slopes
            return np.where(z >= 0, ap, am).astype(np.float64) if order == 1 else np.zeros_like(z)
        return derivatives_torch(self.fn, torch.as_tensor(z), order)[order].numpy()

    def derivatives(self, z: torch.Tensor, max_order: int) -> list[torch.Tensor]:
        """[σ, σ', …, σ^(max_order)] at the float64 tensor z (no delta parts)."""
        if self.slopes is not None:
            ap, am = self.slopes
            out = [self.fn(z)]
            if max_order >= 1:
                out.append(torch.where(z >= 0, torch.full_like(z, ap), torch.full_like(z, am)))
            out += [torch.zeros_like(z)] * (max_order - 1)
            return out
        return derivatives_torch(self.fn, z, max_order)

    def value_and_derivative(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(σ(z), σ'(z)) at a tensor of any dtype/device: the slopes for scale-invariant σ (σ'(0) = a₊),
        else autograd of the elementwise function.  The one σ' of the networks (deepeft.nets)."""
        if self.slopes is not None:
            ap, am = self.slopes
            mask = z >= 0
            if (ap, am) == (1.0, 0.0):  # relu: the 0/1 mask itself (no two filled tensors and a select)
                return self.fn(z), mask.to(z.dtype)
            return self.fn(z), torch.where(mask, z.new_tensor(ap), z.new_tensor(am))
        return value_and_grad_elementwise(self.fn, z)

    def taylor(self, order: int = 5) -> np.ndarray:
        """σ_p = σ^(p)(0) for p = 0 … order (PDLT §5.4 notation σ(z) = Σ σ_p z^p / p!)."""
        key = ("taylor", order)
        if key not in self._cache:
            z = torch.zeros(1, dtype=torch.float64)
            ds = self.derivatives(z, order)
            self._cache[key] = np.array([float(d[0]) for d in ds])
        return self._cache[key]

    def __repr__(self) -> str:
        return f"Activation({self.name!r})"


def value_and_grad_elementwise(fn: TorchFn, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(f(z), f'(z)) of an elementwise torch function by one autograd pass (the gradient of Σf(z)
    is f'(z) elementwise); a constant f has f' = 0."""
    with torch.enable_grad():
        zz = z.detach().requires_grad_(True)
        s = fn(zz)
        if not s.requires_grad:  # constant activation
            return s.detach(), torch.zeros_like(z)
        (g,) = torch.autograd.grad(s.sum(), zz)
    return s.detach(), g.detach()


def derivatives_torch(fn: TorchFn, z: torch.Tensor, max_order: int) -> list[torch.Tensor]:
    """Elementwise derivatives σ^(k)(z), k = 0..max_order, by nested autograd (float64)."""
    z = z.detach().to(torch.float64).requires_grad_(True)
    with torch.enable_grad():
        cur = fn(z)
        out = [cur.detach()]
        for k in range(max_order):
            if not cur.requires_grad:
                out += [torch.zeros_like(z)] * (max_order - k)
                break
            (g,) = torch.autograd.grad(cur.sum(), z, create_graph=k + 1 < max_order, allow_unused=True)
            if g is None:
                g = torch.zeros_like(z)
            out.append(g.detach())
            cur = g
    return out


def _relu_family(name: str, ap: float, am: float) -> Activation:
    if ap == 1.0 and am == 1.0:
        fn = lambda z: z  # noqa: E731
    elif ap == 1.0 and am == 0.0:
        fn = torch.relu
    else:
        fn = lambda z: torch.where(z >= 0, ap * z, am * z)  # noqa: E731
    return Activation(name, fn, slopes=(ap, am), smooth=(ap == am))


def _erf(z):
    return torch.special.erf(z)


_BUILTIN: dict[str, Callable[[float | None], Activation]] = {
    "linear": lambda p: _relu_family("linear", 1.0, 1.0),
    "relu": lambda p: _relu_family("relu", 1.0, 0.0),
    "leaky_relu": lambda p: _relu_family(f"leaky_relu:{0.01 if p is None else p:g}", 1.0, 0.01 if p is None else p),
    "abs": lambda p: _relu_family("abs", 1.0, -1.0),
    "erf": lambda p: Activation("erf", _erf, closed_form="erf"),
    "tanh": lambda p: Activation("tanh", torch.tanh),
    "gelu": lambda p: Activation("gelu", lambda z: torch.nn.functional.gelu(z)),
    "silu": lambda p: Activation("silu", torch.nn.functional.silu),
    "softplus": lambda p: Activation("softplus", torch.nn.functional.softplus),
    "sigmoid": lambda p: Activation("sigmoid", torch.sigmoid),
    "sin": lambda p: Activation("sin", torch.sin),
    "elu": lambda p: Activation("elu", torch.nn.functional.elu, smooth=False),
}
_ALIASES = {"swish": "silu", "identity": "linear", "none": "linear", "leakyrelu": "leaky_relu"}

ACTIVATION_NAMES = tuple(sorted(set(_BUILTIN) | set(_ALIASES)))


def get_activation(act: "str | Activation | TorchFn", slope: float | None = None) -> Activation:
    """Resolve an activation given by name (``'tanh'``, ``'leaky_relu:0.1'``), an
    :class:`Activation`, or a callable acting elementwise on torch tensors."""
    if isinstance(act, Activation):
        return act
    if isinstance(act, str):
        key, _, param = act.strip().lower().partition(":")
        key = _ALIASES.get(key, key)
        if key not in _BUILTIN:
            raise ParameterError("activation", act, "one of " + ", ".join(ACTIVATION_NAMES) + " or a callable")
        p = slope
        if param:
            try:
                p = float(param)
            except ValueError:
                raise ParameterError("activation", act, "a parameter after ':' that is a number, e.g. 'leaky_relu:0.1'") from None
        return _BUILTIN[key](p)
    if callable(act):
        return custom_activation(act)
    raise ParameterError("activation", act, "a name (" + ", ".join(ACTIVATION_NAMES) + ") or a callable")


#: a user activation must be finite on [-R, R] (20σ at K = 1, 2σ at K = 100)
_FINITE_RANGE = 20.0


def custom_activation(fn: Callable, name: str | None = None, smooth: bool = True) -> Activation:
    """Wrap a user callable.  It must map a float64 torch tensor elementwise to a tensor of the
    same shape; derivatives are taken by autograd.  Checked once here."""
    if not callable(fn):
        raise ParameterError("activation", fn, "a callable acting elementwise on torch tensors")
    probe = torch.linspace(-3, 3, 7, dtype=torch.float64)
    try:
        out = fn(probe)
    except Exception as exc:  # noqa: BLE001 - any failure means the callable is unusable
        raise ParameterError("activation", getattr(fn, "__name__", fn),
                             "a callable that accepts a torch tensor", f"calling it raised {type(exc).__name__}: {exc}") from None
    if not isinstance(out, torch.Tensor) or out.shape != probe.shape:
        raise ParameterError("activation", getattr(fn, "__name__", fn),
                             "a callable returning a torch tensor of the input's shape (elementwise)")
    # Gaussian integrals sample σ out to many standard deviations: it must be finite there, not only near 0
    wide = torch.linspace(-_FINITE_RANGE, _FINITE_RANGE, 6001, dtype=torch.float64)
    try:
        vals = fn(wide)
    except Exception as exc:  # noqa: BLE001
        raise ParameterError("activation", getattr(fn, "__name__", fn), f"a callable defined on [-{_FINITE_RANGE:g}, "
                             f"{_FINITE_RANGE:g}]", f"calling it raised {type(exc).__name__}: {exc}") from None
    bad = ~torch.isfinite(vals) if isinstance(vals, torch.Tensor) and vals.shape == wide.shape else None
    if bad is not None and bool(bad.any()):
        z = float(wide[bad][torch.argmin(wide[bad].abs())])
        raise ParameterError("activation", getattr(fn, "__name__", fn),
                             f"a callable finite on [-{_FINITE_RANGE:g}, {_FINITE_RANGE:g}] (where the Gaussian integrals "
                             f"sample it)", f"it returns {float(vals[wide == z][0])} at z = {z:.4g}")
    nm = name or f"custom:{getattr(fn, '__name__', type(fn).__name__)}"
    return Activation(nm, fn, smooth=smooth)


def scale_invariant_constants(act: Activation) -> dict[str, float]:
    """A₂, A₄, ν = 3A₄/A₂² − 1, ν' = A₄/A₂² − 1 (PDLT §5.3 scale-invariant class)."""
    if act.slopes is None:
        raise ParameterError("activation", act.name, "a scale-invariant activation (linear, relu, leaky_relu, abs)")
    ap, am = act.slopes
    A2 = (ap**2 + am**2) / 2
    A4 = (ap**4 + am**4) / 2
    return {"A2": A2, "A4": A4, "nu": 3 * A4 / A2**2 - 1, "nu_prime": A4 / A2**2 - 1}

