"""Observables: the one result type shared by theory, ensemble, comparison, plots, store, JSON.

Quantity names, shapes and meanings are the records of :mod:`deepeft.core.quantities` (the
registry; ``python -c "from deepeft.core.quantities import doc_table; print(doc_table())"`` lists
them).  Arrays are layer-first: layer index 0 ↔ layer ℓ = 1; N = number of inputs.  Measured
observables carry standard errors in ``errors`` under the same names.  Old names (``ntk_var``,
``A``, ``B``, ``D``, ``F``) still work as keys, with a DeprecationWarning.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import quantities as _q
from .jsonutil import to_jsonable as _jsonable
from .spec import MLPSpec


class QuantityDict(dict):
    """A dict of arrays keyed by registered quantity names that also answers to old names (aliases),
    with a DeprecationWarning."""

    def __init__(self, *args, **kw):
        super().__init__()
        for k, v in dict(*args, **kw).items():
            self[_q.canonical(k, stacklevel=4)] = v

    def _key(self, k):
        if isinstance(k, str) and not super().__contains__(k):
            return _q.canonical(k, stacklevel=4)
        return k

    def __getitem__(self, k):
        return super().__getitem__(self._key(k))

    def __contains__(self, k):
        return super().__contains__(self._key(k))

    def get(self, k, default=None):
        return super().get(self._key(k), default)


@dataclass
class Observables:
    spec: MLPSpec
    inputs: np.ndarray
    source: str  # 'theory' or 'ensemble'
    values: dict[str, np.ndarray] = field(default_factory=dict)
    errors: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.values = QuantityDict(self.values)
        self.errors = QuantityDict(self.errors)

    @property
    def depth(self) -> int:
        return self.spec.depth

    @property
    def n_inputs(self) -> int:
        return int(self.inputs.shape[0])

    def __getitem__(self, name: str) -> np.ndarray:
        return self.values[name]

    def __contains__(self, name: str) -> bool:
        return name in self.values

    def error(self, name: str) -> np.ndarray | None:
        return self.errors.get(name)

    def to_dict(self, include: tuple[str, ...] | None = None) -> dict[str, Any]:
        """JSON-ready dict (lists of floats)."""
        keys = tuple(dict.fromkeys(_q.canonical(k) for k in include)) if include else tuple(self.values)
        return {
            "source": self.source,
            "spec": self.spec.to_dict(),
            "inputs": _jsonable(self.inputs),
            "values": {k: _jsonable(np.asarray(self.values[k])) for k in keys if k in self.values},
            "errors": {k: _jsonable(np.asarray(self.errors[k])) for k in keys if k in self.errors},
            "meta": _jsonable(self.meta),
        }
