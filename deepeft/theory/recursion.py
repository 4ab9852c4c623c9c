"""Layer-to-layer recursions of the effective theory at initialisation (MLP and residual MLP).

Implements, for N inputs (PDLT; equations as collected in the project's PDLT reference):

* kernel           K^(l+1) = C_b + C_W ⟨σσ⟩_{K^(l)}                                   (§2)
* frozen NTK       Θ^(l+1) = λ_b + λ_W ⟨σσ⟩ + C_W ⟨σ'σ'⟩ ∘ Θ^(l)                      (§5.2)
* vertex           V^(l+1) = C_W²[⟨σσσσ⟩ − ⟨σσ⟩⟨σσ⟩] + r C_W²/4 Σ V ⟨∂∂σσ⟩⟨∂∂σσ⟩       (§4.2)
* 1/n kernel       K1^(l+1) = r C_W[½ Σ K1 ⟨∂∂σσ⟩ + ⅛ Σ V ⟨∂∂∂∂σσ⟩]                  (§4.3)
* susceptibilities χ_∥ = C_W d⟨σ²⟩/dK, χ_⊥ = C_W ⟨σ'²⟩                                (§3)

with r = n_l / n_{l-1} (1/n objects of layer l are normalised by n_{l-1}; see conventions).

Residual layers z' = ξ z + γ (b + W σ(z)) (ξ skip, γ branch): K' = ξ²K + γ²(C_b + C_W⟨σσ⟩),
Θ' = ξ²Θ + γ²(λ_b + λ_W⟨σσ⟩ + C_W⟨σ'σ'⟩∘Θ) at infinite width.  Their 1/n quantities (V, K1) do not
follow a layer-to-layer recursion in V alone — a neuron remembers its own past through the skip —
and come from :mod:`deepeft.theory.residual` (diagonal, one input at a time).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from ..core.errors import ParameterError
from ..core.spec import MLPSpec
from ..nets.mlp import spec_layers
from .layer_integrals import LayerIntegrals, layer_integrals


@dataclass
class RecursionResult:
    """Per-layer arrays (index 0 ↔ layer 1).  V is None unless the full tensor was propagated."""

    K: np.ndarray                # (L, N, N)
    Theta: np.ndarray            # (L, N, N)
    chi_par: np.ndarray          # (L, N)
    chi_perp: np.ndarray         # (L, N)
    V_diag: np.ndarray | None = None   # (L, N): V_{(aa)(aa)}
    K1_diag: np.ndarray | None = None  # (L, N)
    V: np.ndarray | None = None        # (L, N, N, N, N)
    K1: np.ndarray | None = None       # (L, N, N)
    fan_in: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (L,) n_{l-1}
    ntk: dict | None = None            # with ntk_stats: Theta1, A, B, D, F, each (L, N)


def layer_kernels(layers, x: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(K, Θ) after each layer of any layer list (:mod:`deepeft.nets.layers`) at infinite width,
    starting from the inputs' Gram x·x/n_0 (e.g. ``layer_kernels(spec_layers(spec), x)``)."""
    K, Th = x @ x.T / x.shape[1], None
    out = []
    for layer in layers:
        K, Th = layer.kernel(K, Th)
        out.append((K, Th))
    return out


def first_layer_kernel(spec: MLPSpec, x: np.ndarray, blocks=None) -> tuple[np.ndarray, np.ndarray]:
    """K^(1) = C_b + C_W x·x/n_0 and Θ^(1) = λ_b + λ_W x·x/n_0 (the first block of the spec's layer list)."""
    first = (spec_layers(spec) if blocks is None else blocks)[0]
    return first.kernel(first.input_gram(x))


def _contract_D2_V_D2(D2: np.ndarray, V: np.ndarray) -> np.ndarray:
    # Σ_{β1..β4} D2[a1,a2,β1,β2] V[β1,β2,β3,β4] D2[a3,a4,β3,β4]
    return np.einsum("abij,ijkl,cdkl->abcd", D2, V, D2, optimize=True)


def _K1_fourth_term(V: np.ndarray, li: LayerIntegrals) -> np.ndarray:
    """T[a,b] = Σ_{β∈{a,b}^4} V_{(β1β2)(β3β4)} ⟨∂_β1..∂_β4 (σ_aσ_b)⟩."""
    N = V.shape[0]
    T = np.zeros((N, N))
    if N > 1 and li.M4 is not None:
        A, B = np.meshgrid(np.arange(N), np.arange(N), indexing="ij")
        for bits in itertools.product((0, 1), repeat=4):
            sel = [A if bit == 0 else B for bit in bits]
            na = 4 - sum(bits)  # number of derivatives on σ_a
            T += V[sel[0], sel[1], sel[2], sel[3]] * li.M4[na]
    idx = np.arange(N)
    T[idx, idx] = V[idx, idx, idx, idx] * 4 * li.d2g  # ⟨(σ²)''''⟩ = 4 d²⟨σ²⟩/dK²
    return T


def check_separated(spec: MLPSpec, x: np.ndarray) -> None:
    """Distinct but nearly parallel inputs make the 1/n integrals of kinked σ ill-conditioned."""
    if spec.activation.slopes is None or x.shape[0] < 2 or spec.activation.slopes[0] == spec.activation.slopes[1]:
        return
    K = first_layer_kernel(spec, x)[0]
    d = np.sqrt(np.diag(K))
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = K / np.outer(d, d)
    np.fill_diagonal(rho, 0.0)
    bad = np.argwhere(np.abs(rho) > 1 - 1e-10)
    if len(bad):
        a, b = bad[0]
        raise ParameterError("inputs", f"rows {a} and {b} (layer-1 correlation {rho[a, b]:.12f})",
                             "inputs that are identical or clearly distinct (|ρ| < 1 − 1e-10) for a kinked activation")


def _ntk_single_input_step(st: dict, li: LayerIntegrals, cw: float, lw: float, r: float) -> dict:
    """One layer of the single-input finite-width NTK recursions (PDLT ch. 8; :mod:`.ntk` states them):
    (Θ1, A, B, D, F) at layer l → l+1 from the tables at K^(l), with (C_W, λ_W) of layer l+1.
    ``st`` holds them with V, K1 (diagonal) and Θ (diagonal) of layer l."""
    V, K1, Th = st["V"], st["K1"], st["Theta"]
    A, B, D, F, T1 = st["A"], st["B"], st["D"], st["F"], st["Theta1"]
    g, g4, dg, d2g = li.g, li.g4, li.dg, li.d2g
    gp, dgp, d2gp, gp4, g22 = li.gp, li.dgp, li.d2gp, li.gp4, li.g22
    chi_par, chi_perp, dchi_perp = cw * dg, cw * gp, cw * dgp
    var_s2, var_sp2, cov = g4 - g**2, gp4 - gp**2, g22 - g * gp
    dOmega = lw * dg + Th * dchi_perp
    var_Omega = lw**2 * var_s2 + 2 * lw * cw * Th * cov + cw**2 * Th**2 * var_sp2
    return {
        "B": cw**2 * gp4 * Th**2 + r * chi_perp**2 * B,
        "F": cw**2 * g22 * Th + r * chi_par**2 * F,
        "D": cw * (lw * var_s2 + cw * Th * cov) + r * chi_par * V * dOmega + r * chi_par * chi_perp * D,
        "A": var_Omega + r * V * dOmega**2 + r * chi_perp**2 * A + 2 * r * chi_perp * dOmega * D,
        "Theta1": r * (lw * (K1 * dg + V / 8 * 4 * d2g)
                       + cw * (gp * T1 + Th * (K1 * dgp + V / 8 * 4 * d2gp) + (D + 2 * F) * dgp)),
    }


NTK_STATS = ("Theta1", "A", "B", "D", "F")


def propagate(spec: MLPSpec, x: np.ndarray, *, order: str = "1/n", vertex: str = "auto",
              ntk_stats: bool = False) -> RecursionResult:
    """Run the recursions through all L layers: one depth loop over the spec's layer list
    (:func:`deepeft.nets.spec_layers`), one table of Gaussian integrals per layer.

    order: 'infinite' (K, Θ, χ) or '1/n' (adds V and K1).  vertex: 'full' propagates the whole
    (α1α2)(α3α4) tensor (cost ~N⁶ per layer, for N ≲ 12), 'diagonal' only V_{(αα)(αα)} and K1_αα
    (each obeys the closed single-input recursion), 'auto' = full for N ≤ 8; 'single' (with
    ``ntk_stats``) also skips the two-point integrals (off-diagonal K, Θ are then not computed).
    ntk_stats: with order '1/n' (non-residual), also the single-input NTK statistics Θ1, A, B, D, F
    (:mod:`deepeft.theory.ntk`) in ``RecursionResult.ntk`` (each (L, N)).
    """
    if order not in ("infinite", "1/n"):
        raise ParameterError("order", order, "'infinite' or '1/n'")
    if vertex not in ("auto", "full", "diagonal", "single"):
        raise ParameterError("vertex", vertex, "'auto', 'full' or 'diagonal'")
    N = x.shape[0]
    if spec.residual is not None and order == "1/n":
        if vertex == "full":
            raise ParameterError("vertex", vertex, "'diagonal' or 'auto' for residual MLPs (the full multi-input "
                                 "vertex of residual networks is not implemented; see deepeft.theory.residual)")
        vertex = "diagonal"
    if ntk_stats and (order != "1/n" or spec.residual is not None):
        raise ParameterError("ntk_stats", ntk_stats, "False unless order='1/n' for a non-residual MLP")
    full = order == "1/n" and (vertex == "full" or (vertex == "auto" and N <= 8))
    if full:
        check_separated(spec, x)
    blocks = spec_layers(spec)
    L = spec.depth
    act = spec.activation
    K, Th = first_layer_kernel(spec, x, blocks)
    Ks, Ths, cpar, cperp = [K], [Th], [], []
    Vd, K1d = [np.zeros(N)], [np.zeros(N)]
    Vf, K1f = ([np.zeros((N,) * 4)], [np.zeros((N, N))]) if full else (None, None)
    V = np.zeros((N,) * 4) if full else None
    K1 = np.zeros((N, N)) if full else None
    v, k1 = np.zeros(N), np.zeros(N)
    nst = {k: np.zeros(N) for k in NTK_STATS} if ntk_stats else None
    ntk_rows = {k: [np.zeros(N)] for k in NTK_STATS} if ntk_stats else None
    for l in range(1, L + 1):
        if not np.all(np.isfinite(K)) or np.any(np.diag(K) > 1e150):
            raise ParameterError("C_W", spec.C_W, "values for which the kernel stays finite",
                                 f"the kernel overflowed at layer {l}; the network is deep in the chaotic phase")
        li = layer_integrals(act, K, derivatives=(order == "1/n"), fourth=full, four_point=full and l < L,
                             check=(l == 1 or l == L), ntk=ntk_stats and l < L, pairs=vertex != "single")
        # χ at layer l is defined with the next layer's C_W (the last layer: its own)
        chi = blocks[min(l + 1, L) - 1].susceptibilities(li)
        cpar.append(chi[0])
        cperp.append(chi[1])
        if l == L:
            break
        nxt = blocks[l]  # the block computing layer l+1 from layer l
        d = nxt.dense
        cw, lw = d.C_W, d.ntk_lambdas()[0]
        r = spec.fan_in(l + 1) / spec.fan_in(l)
        K_new, Th_new = nxt.kernel(K, Th, li)
        if order == "1/n":
            if ntk_stats:
                st = dict(nst, V=v, K1=k1, Theta=np.diag(Th))
                nst = _ntk_single_input_step(st, li, cw, lw, r)
                for k in NTK_STATS:
                    ntk_rows[k].append(nst[k])
            # single-input (diagonal) recursions, PDLT reference §4.2/§4.3 (+ residual §8)
            var = cw**2 * (li.g4 - li.g**2)
            chi_mlp = cw * li.dg
            v_new = var + r * chi_mlp**2 * v
            k1_new = r * (chi_mlp * k1 + cw / 8 * v * 4 * li.d2g)
            v, k1 = v_new, k1_new
            if full:
                src = cw**2 * (li.S4 - np.einsum("ab,cd->abcd", li.G, li.G))
                prop = r * cw**2 / 4 * _contract_D2_V_D2(li.D2, V)
                V_new = src + prop
                mlp_k1 = r * cw * (0.5 * np.einsum("ij,abij->ab", K1, li.D2) + _K1_fourth_term(V, li) / 8)
                K1_new = mlp_k1
                V, K1 = V_new, K1_new
                Vf.append(V)
                K1f.append(K1)
            Vd.append(v)
            K1d.append(k1)
        K, Th = K_new, Th_new
        Ks.append(K)
        Ths.append(Th)
    out = RecursionResult(K=np.array(Ks), Theta=np.array(Ths), chi_par=np.array(cpar), chi_perp=np.array(cperp),
                          fan_in=np.array([spec.fan_in(l) for l in range(1, L + 1)], dtype=float))
    if order == "1/n":
        out.V_diag, out.K1_diag = np.array(Vd), np.array(K1d)
        if spec.residual is not None:  # skip connections need the linear-response form
            from .residual import residual_single_input
            for a in range(N):
                rr = residual_single_input(spec, float(out.K[0, a, a]), K=out.K[:, a, a])
                out.V_diag[:, a], out.K1_diag[:, a] = rr["V"], rr["K1"]
        if full:
            out.V, out.K1 = np.array(Vf), np.array(K1f)
        if ntk_stats:
            out.ntk = {k: np.array(v_) for k, v_ in ntk_rows.items()}
    return out
