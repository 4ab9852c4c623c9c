"""One validation path: errors that name the parameter and the allowed range."""
from __future__ import annotations

import math
from typing import Any

import numpy as np


class DeepEFTError(ValueError):
    """Base class of deepeft's user-facing errors."""


def _short_repr(value: Any, limit: int = 200) -> str:
    """repr of a value, shortened in the middle when long (a per-layer list of a 10 000-layer network)."""
    r = repr(value)
    if len(r) <= limit:
        return r
    n = len(value) if hasattr(value, "__len__") else None
    return r[: limit // 2] + " … " + r[-limit // 4:] + (f" ({n} entries)" if n is not None else "")


class ParameterError(DeepEFTError):
    """A parameter is outside its allowed range.  The message names both."""

    def __init__(self, name: str, value: Any, allowed: str, hint: str = ""):
        self.name, self.value, self.allowed = name, value, allowed
        msg = f"{name}={_short_repr(value)} is invalid: allowed {allowed}"
        if hint:
            msg += f". {hint}"
        super().__init__(msg)


class AccuracyWarning(UserWarning):
    """A numerical procedure did not reach its target accuracy; the message says what it reached."""


class DivergenceError(DeepEFTError):
    """A sampler or recursion diverged (NaN/Inf or beyond a stability bound)."""


def check_finite(name: str, value: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ParameterError(name, value, "a finite real number") from None
    if not math.isfinite(v):
        raise ParameterError(name, value, "a finite real number")
    return v


def check_positive(name: str, value: float) -> float:
    v = check_finite(name, value)
    if v <= 0:
        raise ParameterError(name, value, "> 0")
    return v


def check_nonnegative(name: str, value: float) -> float:
    v = check_finite(name, value)
    if v < 0:
        raise ParameterError(name, value, ">= 0")
    return v


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ParameterError(name, value, f"an integer >= {minimum}")
    if value < minimum:
        raise ParameterError(name, value, f"an integer >= {minimum}")
    return int(value)

