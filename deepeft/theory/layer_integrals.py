"""Per-layer Gaussian integral tables consumed by the recursions (computed once per layer).

Given the N×N kernel K^(l), :func:`layer_integrals` returns

* ``G[a,b]  = ⟨σ_a σ_b⟩``, ``Gp[a,b] = ⟨σ'_a σ'_b⟩``;
* ``dg, d2g`` = d⟨σ²⟩/dK, d²⟨σ²⟩/dK² at K_aa (diagonal, length N), and ``dgp = d⟨σ'²⟩/dK``;
* ``D2[a,b,c,d] = ⟨∂_c ∂_d (σ_a σ_b)⟩``  (nonzero only for c, d ∈ {a, b});
* ``M4[k][a,b] = ⟨σ^(k)_a σ^(4-k)_b⟩`` for a ≠ b (k = 0 … 4) and ``q4 = ⟨(σ²)''''⟩ = 4 d²⟨σ²⟩/dK²``
  on the diagonal — the fourth-derivative expectations of the K1 recursion;
* ``S4[a,b,c,d] = ⟨σ_a σ_b σ_c σ_d⟩`` when the four-point tensor is requested.

Derivative expectations follow PDLT reference §4.2 (derivative, "Edgeworth" form): for a ≠ b,
⟨∂_a²(σ_aσ_b)⟩ = ⟨σ''_a σ_b⟩, ⟨∂_a∂_b(σ_aσ_b)⟩ = ⟨σ'_a σ'_b⟩; for a = b, ⟨(σ²)''⟩ = 2 d⟨σ²⟩/dK.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core import gaussian as gi
from ..core.activations import Activation


@dataclass
class LayerIntegrals:
    G: np.ndarray
    Gp: np.ndarray
    g: np.ndarray
    dg: np.ndarray
    d2g: np.ndarray
    gp: np.ndarray
    dgp: np.ndarray
    g4: np.ndarray | None = None
    d2gp: np.ndarray | None = None   # d²⟨σ'²⟩/dK²       (ntk=True)
    gp4: np.ndarray | None = None    # ⟨σ'⁴⟩             (ntk=True)
    g22: np.ndarray | None = None    # ⟨σ²σ'²⟩          (ntk=True)
    D2: np.ndarray | None = None
    M4: list[np.ndarray] | None = None
    S4: np.ndarray | None = None


def _fill_pairs(act: Activation, K: np.ndarray, i: int, j: int, diag: np.ndarray, check: bool = False) -> np.ndarray:
    N = K.shape[0]
    out = np.empty((N, N))
    iu = np.triu_indices(N, 1)
    if len(iu[0]):
        a, b = iu
        v = gi.pair(act, K[a, a], K[a, b], K[b, b], i, j, check=check)
        out[a, b] = v
        if i == j:
            out[b, a] = v
        else:  # (i, j) at (b, a) equals (j, i) at (a, b)
            out[b, a] = gi.pair(act, K[a, a], K[a, b], K[b, b], j, i, check=check)
    out[np.diag_indices(N)] = diag
    return out


def layer_integrals(act: Activation, K: np.ndarray, *, derivatives: bool = True, fourth: bool = False,
                    four_point: bool = False, check: bool = False, ntk: bool = False,
                    pairs: bool = True) -> LayerIntegrals:
    """Gaussian integral tables at kernel K (N×N).  ``derivatives``: D2 (needed for V);
    ``fourth``: M4/q4 (needed for K1); ``four_point``: S4 (multi-input V source); ``ntk``: the
    one-variable moments of the NTK statistics (d2gp, gp4, g22); ``pairs=False``: diagonal only
    (each input on its own: G, Gp, D2 vanish off the diagonal)."""
    N = K.shape[0]
    kd = np.diag(K).copy()
    req = [(2, 0, 0), (0, 2, 0), (4, 0, 0), (2, 0, 1)] + ([(2, 0, 2), (0, 2, 1)] if derivatives else [])
    if ntk:
        req += [(0, 2, 2), (0, 4, 0), (2, 2, 0)]
    t = gi.single_table(act, kd, req, check=check)
    g, gp, g4 = t[(2, 0, 0)], t[(0, 2, 0)], t[(4, 0, 0)]
    dg, d2g, dgp = (t.get((2, 0, 1)), t.get((2, 0, 2)), t.get((0, 2, 1)))
    G = _fill_pairs(act, K, 0, 0, g, check) if pairs else np.diag(g)
    Gp = _fill_pairs(act, K, 1, 1, gp, check) if pairs else np.diag(gp)
    out = LayerIntegrals(G=G, Gp=Gp, g=g, dg=dg, d2g=d2g, gp=gp, dgp=dgp, g4=g4,
                         d2gp=t.get((0, 2, 2)), gp4=t.get((0, 4, 0)), g22=t.get((2, 2, 0)))
    if derivatives:
        D2 = np.zeros((N, N, N, N))
        if N > 1 and pairs:
            P20 = _fill_pairs(act, K, 2, 0, np.zeros(N), check)  # ⟨σ''_a σ_b⟩ (diag unused)
            a, b = np.nonzero(~np.eye(N, dtype=bool))
            D2[a, b, a, a] = P20[a, b]
            D2[a, b, b, b] = P20[b, a]
            D2[a, b, a, b] = Gp[a, b]
            D2[a, b, b, a] = Gp[a, b]
        idx = np.arange(N)
        D2[idx, idx, idx, idx] = 2 * dg  # ⟨(σ²)''⟩ = 2 d⟨σ²⟩/dK
        out.D2 = D2
    if fourth and N > 1:
        out.M4 = [_fill_pairs(act, K, k, 4 - k, np.zeros(N), check) for k in range(5)]
    if four_point:
        out.S4 = gi.four_point_table(act, K)
    return out
