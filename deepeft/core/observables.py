"""Observables: the one result type shared by theory, ensemble, comparison, plots, store, JSON.

Quantity names (arrays are layer-first, layer index 0 ↔ layer l = 1; N = number of inputs):

=============  ================  ===========================================================
name           shape             meaning
=============  ================  ===========================================================
``kernel``     (L, N, N)         E[z_{i;α} z_{i;β}] (theory: K + K1/n_{l-1}, at O(1/n))
``K``          (L, N, N)         infinite-width kernel K^(l)            (theory only)
``K1``         (L, N, N)         1/n kernel correction K1^(l)           (theory only)
``V``          (L, N, N, N, N)   four-point vertex V^(l)_{(α1α2)(α3α4)} (connected 4-pt × n_{l-1})
``V_norm``     (L, N)            V_{(αα)(αα)} / (n_{l-1} K_{αα}²) = excess kurtosis / 3
``Theta``      (L, N, N)         NTK mean Θ^(l)
``Theta1``     (L, N)            1/n NTK mean correction: E[Ĥ_ii] = Θ + Θ1/n_{l-1}
``ntk_mean``   (L, N, N)         Θ with the 1/n-corrected diagonal
``ntk_var``    (L, N)            Var(Ĥ_ii) = (A + 2B)/n_{l-1}  (A, B, D, F also stored, (L, N))
``chi_par``    (L, N)            parallel susceptibility χ_∥ at K_{αα}   (theory only)
``chi_perp``   (L, N)            perpendicular susceptibility χ_⊥        (theory only)
=============  ================  ===========================================================

Measured observables carry standard errors in ``errors`` under the same names.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .jsonutil import to_jsonable as _jsonable
from .spec import MLPSpec


@dataclass
class Observables:
    spec: MLPSpec
    inputs: np.ndarray
    source: str  # 'theory' or 'ensemble'
    values: dict[str, np.ndarray] = field(default_factory=dict)
    errors: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

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
        keys = include or tuple(self.values)
        return {
            "source": self.source,
            "spec": self.spec.to_dict(),
            "inputs": _jsonable(self.inputs),
            "values": {k: _jsonable(np.asarray(self.values[k])) for k in keys if k in self.values},
            "errors": {k: _jsonable(np.asarray(self.errors[k])) for k in keys if k in self.errors},
            "meta": _jsonable(self.meta),
        }
