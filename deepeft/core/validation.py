"""Parameter constraints declared once (the idea of scikit-learn's ``validate_params``).

A routine declares, per parameter, a constraint — an interval of numbers, a set of choices, "one
per chain", or an alternative of those — and every entry point checks the same declaration: the
Python API (:func:`validate`), the command line (:func:`parse_text`: the same check on a flag's
text) and study files; ``Constraint.describe()`` writes the allowed values for messages and help.  A violation raises
:class:`~deepeft.core.errors.ParameterError` naming the parameter and what is allowed.

Example::

    SAMPLE_PARAMS = {"num_chains": Interval(int, 1), "localization": Interval(float, 0.0),
                     "sampler": Choices(("sgld", "mala"))}
    kw = validate(SAMPLE_PARAMS, num_chains=4, localization=10.0, sampler="sgld")
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


from .errors import ParameterError, check_finite, check_int, check_nonnegative, check_positive


class Constraint:
    """What one parameter may be.  ``check(name, value)`` returns the normalised value or raises."""

    def check(self, name: str, value: Any) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass(frozen=True)
class Interval(Constraint):
    """A real number (``float``) or an integer (``int``) ≥ ``low`` (> ``low`` when ``open_low``),
    optionally ≤ / < ``high``.  ``Interval(float, 0.0, open_low=True)`` is "> 0"."""

    kind: type
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False

    def check(self, name: str, value: Any) -> Any:
        if self.kind is int:
            v = check_int(name, value, int(self.low) + int(self.open_low) if self.low is not None else -(1 << 62))
        elif self.low == 0.0 and self.high is None:
            v = (check_positive if self.open_low else check_nonnegative)(name, value)
        else:
            v = check_finite(name, value)
            if self.low is not None and (v < self.low or (self.open_low and v == self.low)):
                raise ParameterError(name, value, self.describe())
        if self.high is not None and (v > self.high or (self.open_high and v == self.high)):
            raise ParameterError(name, value, self.describe())
        return v

    def describe(self) -> str:
        if self.kind is int and self.high is None:
            lo = int(self.low) + int(self.open_low) if self.low is not None else None
            return "an integer" if lo is None else f"an integer >= {lo}"
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.open_low else '>='} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<' if self.open_high else '<='} {self.high:g}")
        what = "an integer" if self.kind is int else "a number"
        return f"{what} {' and '.join(parts)}" if parts else what


@dataclass(frozen=True)
class Choices(Constraint):
    """One of a fixed set of values (``options`` may be a callable returning them: a live registry)."""

    options: tuple | Callable[[], tuple]
    text: str | None = None  # how the allowed values are written in the message (default "one of (...)")

    def values(self) -> tuple:
        return tuple(self.options()) if callable(self.options) else tuple(self.options)

    def check(self, name: str, value: Any) -> Any:
        if value not in self.values():
            raise ParameterError(name, value, self.describe())
        return value

    def describe(self) -> str:
        return self.text or f"one of {self.values()}"


@dataclass(frozen=True)
class PerChain(Constraint):
    """A value of ``inner``, or one per chain: ``check`` returns a list of length ``num_chains``
    (pass it with :meth:`bind`)."""

    inner: Constraint
    num_chains: int | None = None

    def bind(self, num_chains: int) -> "PerChain":
        return PerChain(self.inner, num_chains)

    def check(self, name: str, value: Any) -> list:
        C = self.num_chains
        if isinstance(value, (list, tuple)) or len(getattr(value, "shape", ())) > 0:  # also arrays, tensors
            vals = list(value.tolist() if hasattr(value, "tolist") else value)
            if len(vals) != C:
                raise ParameterError(name, value, f"{self.inner.describe()}, or a sequence of num_chains={C} of them")
            return [self.inner.check(name, float(v)) for v in vals]
        return [self.inner.check(name, value)] * C

    def describe(self) -> str:
        return f"{self.inner.describe()} (or one per chain)"


@dataclass(frozen=True)
class AnyOf(Constraint):
    """The first of several constraints that accepts the value (e.g. an integer, or the string 'auto')."""

    options: tuple
    text: str | None = None

    def check(self, name: str, value: Any) -> Any:
        for c in self.options:
            try:
                return c.check(name, value)
            except ParameterError:
                continue
        raise ParameterError(name, value, self.describe())

    def describe(self) -> str:
        return self.text or " or ".join(c.describe() for c in self.options)


def validate(constraints: dict[str, Constraint], **values: Any) -> dict[str, Any]:
    """Check each given value against its declared constraint; returns the normalised values.
    Values without a declaration pass unchanged."""
    return {k: (constraints[k].check(k, v) if k in constraints else v) for k, v in values.items()}


def parse_text(constraint: Constraint, flag: str, text: str, convert: Callable = float, name: str | None = None) -> Any:
    """A command-line value: the text itself when it is one of the constraint's choices (e.g. 'auto'),
    else ``convert(text)``, checked against ``constraint``.  Text that does not parse is an error
    naming ``flag``; a value out of range one naming ``name`` (the API's parameter; default the flag)."""
    for c in (constraint.options if isinstance(constraint, AnyOf) else (constraint,)):
        if isinstance(c, Choices) and str(text).lower() in c.values():
            return str(text).lower()
    try:
        value = convert(text)
    except (TypeError, ValueError):
        raise ParameterError(flag, text, constraint.describe()) from None
    return constraint.check(name or flag, value)
