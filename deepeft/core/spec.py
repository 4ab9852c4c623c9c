"""MLPSpec: the one description of a network that theory and ensemble both consume.

Conventions: see :mod:`deepeft.conventions`.  Layers are numbered l = 1 … L; per-layer lists
(C_W, C_b, lambda_W, lambda_b) have length L and entry l-1 belongs to layer l.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .activations import Activation, get_activation
from .errors import ParameterError, check_finite, check_int

PARAMETERIZATIONS = ("ntk", "standard")


def _per_layer(name: str, value, depth: int, *, positive: bool) -> tuple[float, ...]:
    if np.isscalar(value) or (isinstance(value, np.ndarray) and value.ndim == 0):
        vals = [value] * depth
    else:
        vals = list(value)
        if len(vals) != depth:
            raise ParameterError(name, value, f"a number or a list of {depth} numbers (one per layer)")
    out = []
    uniform = len(set(map(str, vals))) == 1  # once: per entry it made building a deep spec quadratic in depth
    for i, v in enumerate(vals):
        label = name if uniform else f"{name}[{i}]"
        v = check_finite(label, v)
        if positive and v <= 0:
            raise ParameterError(label, v, "> 0")
        if not positive and v < 0:
            raise ParameterError(label, v, ">= 0")
        out.append(v)
    return tuple(out)


@dataclass(frozen=True)
class MLPSpec:
    """A deep MLP at initialisation (optionally residual).

    input_dim: n_0.  widths: hidden widths (n_1, …, n_{L-1}); depth L = len(widths) + 1.
    output_width: n_L.  C_W, C_b: per-layer variances (W ~ N(0, C_W/n_{l-1}), b ~ N(0, C_b)).
    parameterization: 'ntk' or 'standard' (same network distribution, different gradients).
    residual: None, or (xi, gamma): hidden layers l+1 = 2 … L-1 become
        z^(l+1) = xi·z^(l) + gamma·(b + W σ(z^(l)))   (needs n_l = n_{l+1} there).
    lambda_W, lambda_b: PDLT learning-rate tensors per layer (see conventions).  None means the
        rates implied by unit per-parameter learning rates in the chosen parameterisation:
        'ntk' → λ_W = C_W, λ_b = C_b; 'standard' → λ_W = n_{l-1}, λ_b = 1.
    """

    input_dim: int
    widths: tuple[int, ...]
    activation: Activation
    C_W: tuple[float, ...]
    C_b: tuple[float, ...]
    output_width: int = 1
    parameterization: str = "ntk"
    residual: tuple[float, float] | None = None
    lambda_W: tuple[float, ...] = field(default=())
    lambda_b: tuple[float, ...] = field(default=())
    # what the user gave for lambda_W / lambda_b (None: derived from the parameterisation); see replace()
    _given: dict = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "input_dim", check_int("input_dim", self.input_dim, 1))
        if isinstance(self.widths, (int, np.integer)):
            raise ParameterError("widths", self.widths, "a list of hidden widths (use [] for depth 1)")
        widths = tuple(check_int(f"widths[{i}]", w, 1) for i, w in enumerate(self.widths))
        object.__setattr__(self, "widths", widths)
        object.__setattr__(self, "output_width", check_int("output_width", self.output_width, 1))
        object.__setattr__(self, "activation", get_activation(self.activation))
        L = self.depth
        object.__setattr__(self, "C_W", _per_layer("C_W", self.C_W, L, positive=True))
        object.__setattr__(self, "C_b", _per_layer("C_b", self.C_b, L, positive=False))
        if self.parameterization not in PARAMETERIZATIONS:
            raise ParameterError("parameterization", self.parameterization, "'ntk' or 'standard'")
        if self.residual is not None:
            try:
                xi, gamma = self.residual
            except (TypeError, ValueError):
                raise ParameterError("residual", self.residual, "None or a pair (xi, gamma)") from None
            xi = check_finite("residual xi", xi)
            gamma = check_finite("residual gamma", gamma)
            if xi < 0 or gamma <= 0:
                raise ParameterError("residual", self.residual, "xi >= 0 and gamma > 0")
            for l in range(1, L - 1):
                if self.fan_in(l + 1) != self.width(l + 1):
                    raise ParameterError("widths", self.widths,
                                         "equal hidden widths for a residual MLP (skip connections need n_l = n_{l+1})")
            object.__setattr__(self, "residual", (xi, gamma))
        lw = None if (self.lambda_W is None or (not np.isscalar(self.lambda_W) and len(self.lambda_W) == 0)) else self.lambda_W
        lb = None if (self.lambda_b is None or (not np.isscalar(self.lambda_b) and len(self.lambda_b) == 0)) else self.lambda_b
        object.__setattr__(self, "_given", {"lambda_W": lw, "lambda_b": lb})
        if lw is None:
            lw = self.C_W if self.parameterization == "ntk" else tuple(float(self.fan_in(l)) for l in range(1, L + 1))
        if lb is None:
            lb = self.C_b if self.parameterization == "ntk" else (1.0,) * L
        object.__setattr__(self, "lambda_W", _per_layer("lambda_W", lw, L, positive=False))
        object.__setattr__(self, "lambda_b", _per_layer("lambda_b", lb, L, positive=False))

    # -- shape helpers ---------------------------------------------------------------------
    @property
    def depth(self) -> int:
        return len(self.widths) + 1

    @property
    def all_widths(self) -> tuple[int, ...]:
        """(n_0, n_1, …, n_L)."""
        return (self.input_dim, *self.widths, self.output_width)

    def width(self, l: int) -> int:
        """n_l (l = 0 … L)."""
        return self.all_widths[l]

    def fan_in(self, l: int) -> int:
        """n_{l-1}: the width that normalises layer l's weights and its 1/n objects."""
        return self.all_widths[l - 1]

    def is_residual_layer(self, l: int) -> bool:
        """Layer l (1-based) has a skip connection (hidden-to-hidden layers 2 … L-1)."""
        return self.residual is not None and 2 <= l <= self.depth - 1

    def per_parameter_rates(self, l: int) -> tuple[float, float]:
        """(rate for each weight, rate for each bias) of layer l in this parameterisation, so that
        Σ rate·∂z∂z over the network's own parameters equals PDLT's Θ with lambda_W, lambda_b."""
        lw, lb = self.lambda_W[l - 1], self.lambda_b[l - 1]
        if self.parameterization == "standard":
            return lw / self.fan_in(l), lb
        cw, cb = self.C_W[l - 1], self.C_b[l - 1]
        if cb == 0 and lb != 0:
            raise ParameterError(f"lambda_b[{l - 1}]", lb, "0 where C_b = 0 for a network in the 'ntk' parameterisation",
                                 "its bias is sqrt(C_b)·β = 0 and has no gradient; use parameterization='standard'")
        # ntk: W = sqrt(C_W/n) ω, b = sqrt(C_b) β  ⇒  ∂z/∂ω = sqrt(C_W/n) ∂z/∂W.
        return (lw / cw if cw > 0 else 0.0), (lb / cb if cb > 0 else 0.0)

    def replace(self, **changes) -> "MLPSpec":
        """A copy with some constructor arguments changed (e.g. ``widths``).  Learning-rate tensors
        the user did not give are derived again for the new spec (standard: λ_W = n_{l-1})."""
        args = {"input_dim": self.input_dim, "widths": self.widths, "activation": self.activation, "C_W": self.C_W,
                "C_b": self.C_b, "output_width": self.output_width, "parameterization": self.parameterization,
                "residual": self.residual, "lambda_W": self._given["lambda_W"], "lambda_b": self._given["lambda_b"]}
        unknown = set(changes) - set(args)
        if unknown:
            raise ParameterError("changes", sorted(unknown), "MLPSpec arguments: " + ", ".join(args))
        args.update(changes)
        return MLPSpec(**{k: (() if v is None and k.startswith("lambda") else v) for k, v in args.items()})

    # -- serialisation ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "input_dim": self.input_dim, "widths": list(self.widths), "output_width": self.output_width,
            "activation": self.activation.name, "C_W": list(self.C_W), "C_b": list(self.C_b),
            "parameterization": self.parameterization,
            "residual": list(self.residual) if self.residual else None,
            "lambda_W": list(self.lambda_W), "lambda_b": list(self.lambda_b),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "MLPSpec":
        d = dict(d)
        if d.get("residual") is not None:
            d["residual"] = tuple(d["residual"])
        for k in ("widths", "C_W", "C_b", "lambda_W", "lambda_b"):
            if k in d and d[k] is not None:
                d[k] = tuple(d[k])
        spec = cls(**d)
        # to_dict() writes the derived λ too: where they are the defaults, they were not given
        derived = cls(**{k: v for k, v in d.items() if k not in ("lambda_W", "lambda_b")})
        given = {k: (None if getattr(spec, k) == getattr(derived, k) else getattr(spec, k)) for k in ("lambda_W", "lambda_b")}
        object.__setattr__(spec, "_given", given)
        return spec

    @classmethod
    def make(cls, activation, depth: int, width: int | Sequence[int], input_dim: int, *,
             C_W=None, C_b=None, W_std=None, b_std=None, output_width: int = 1,
             parameterization: str = "ntk", residual=None, lambda_W=None, lambda_b=None) -> "MLPSpec":
        """Convenience constructor: ``depth`` weight layers, equal hidden ``width`` (or a list of
        depth-1 widths).  Give C_W/C_b or W_std/b_std (C = std²), not both.  For critical values
        use :func:`deepeft.theory.critical_spec`."""
        depth = check_int("depth", depth, 1)
        if isinstance(width, (int, float, np.integer, np.floating)) or np.ndim(width) == 0:
            widths = (check_int("width", width, 1),) * (depth - 1)  # 3.7 → a clear error, not a TypeError
        else:
            try:
                widths = tuple(width)
            except TypeError:
                raise ParameterError("width", width, "a positive integer or a list of depth-1 positive integers") from None
            if len(widths) != depth - 1:
                raise ParameterError("width", width, f"an int or a list of depth-1 = {depth - 1} hidden widths")
        if W_std is not None:
            if C_W is not None:
                raise ParameterError("W_std", W_std, "either C_W or W_std, not both")
            C_W = np.square(np.asarray(W_std, dtype=float)) if not np.isscalar(W_std) else check_finite("W_std", W_std) ** 2
        if b_std is not None:
            if C_b is not None:
                raise ParameterError("b_std", b_std, "either C_b or b_std, not both")
            C_b = np.square(np.asarray(b_std, dtype=float)) if not np.isscalar(b_std) else check_finite("b_std", b_std) ** 2
        if C_W is None:
            raise ParameterError("C_W", None, "a positive number (or W_std), or use deepeft.theory.critical_spec")
        C_b = 0.0 if C_b is None else C_b
        return cls(input_dim, widths, get_activation(activation), C_W, C_b, output_width=output_width,
                   parameterization=parameterization, residual=residual,
                   lambda_W=() if lambda_W is None else lambda_W, lambda_b=() if lambda_b is None else lambda_b)


def validate_inputs(x, spec: MLPSpec | None = None, name: str = "inputs") -> np.ndarray:
    """Inputs as an (N, n_0) float64 array; 1-d input means one sample."""
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParameterError(name, type(x).__name__, "an array of shape (N, input_dim)") from None
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1:
        raise ParameterError(name, f"shape {a.shape}", "an array of shape (N, input_dim) with N >= 1")
    if not np.all(np.isfinite(a)):
        raise ParameterError(name, "array with NaN/inf", "finite values only")
    if spec is not None and a.shape[1] != spec.input_dim:
        raise ParameterError(name, f"shape {a.shape}", f"second dimension equal to input_dim={spec.input_dim}")
    return a
