"""Exact blocked Gibbs sampler for deep linear networks: the finite-nβ reference for λ̂.

Model and conventions (those of :func:`deepeft.bayes.estimate_llc` on a bias-free linear
``nn.Sequential`` with the Gaussian NLL ½‖y − f‖² and a noise-free teacher y = P* x):

    f(x) = W_L ⋯ W_1 x = P x,       t = nβ,       Σ = xᵀx/n (input covariance, default I)
    nβ·(L_n(w) − L_n(w*)) = (t/2) tr[(P − P*) Σ (P − P*)ᵀ]
    tempered, localised posterior ∝ exp(−(t/2) tr[(P − P*)Σ(P − P*)ᵀ] − (γ/2)‖w − w*‖²)

λ̂ = E[(t/2) tr[(P − P*)Σ(P − P*)ᵀ]] is the exact finite-(t, γ) expectation that Langevin samplers
estimate; it tends to Aoyagi's λ as t·γ^(−L) → ∞ (slt.md §2–3; by homogeneity at w* = 0 it depends
on t, γ only through t·γ^(−L)).

Why Gibbs: given all other factors, the potential is quadratic in one factor W_i — with
A = W_L⋯W_(i+1), B = W_(i−1)⋯W_1 it is (t/2)‖A W_i B Σ^½ − P* Σ^½‖² + (γ/2)‖W_i − W*_i‖² — so W_i's
conditional is Gaussian with precision t (BΣBᵀ ⊗ AᵀA) + γ I.  In the eigenbases AᵀA = U diag(a) Uᵀ,
BΣBᵀ = V diag(b) Vᵀ it is diagonal, Λ_jk = t a_j b_k + γ, so an exact draw costs two small
eigendecompositions.  Each sweep resamples every factor exactly, whatever the conditioning: near a
degenerate w* the stiff (t·a·b) and soft (γ) directions differ by many orders of magnitude, which
stalls Langevin dynamics (see docs/bayes.md) but not this sampler.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from ..core.progress import progress_bar
from ..core.errors import ParameterError
from ..core.validation import Choices, Interval, validate
from .diagnostics import ess, rhat
from .ground_truth import aoyagi_dln, check_dln


_POSITIVE = Interval(float, 0.0, open_low=True)
#: the settings of :func:`dln_gibbs` and what they may be (deepeft.core.validation)
DLN_GIBBS_PARAMS = {"nbeta": _POSITIVE, "localization": _POSITIVE, "num_chains": Interval(int, 2),
                    "num_sweeps": Interval(int, 2), "num_burnin_sweeps": Interval(int, 0),
                    "init": Choices(("center", "prior"), "'center' or 'prior'")}


@dataclass
class DLNGibbsResult:
    """λ̂ from the exact Gibbs sampler.  ``trace`` is (chains, kept sweeps) of t·(L_n − L_n(w*))."""

    llc_mean: float
    llc_se: float
    llc_per_chain: np.ndarray
    trace: np.ndarray
    widths: list
    rank: int
    nbeta: float
    localization: float
    rhat: float
    ess: float
    aoyagi_lambda: float
    aoyagi_multiplicity: int
    config: dict = field(default_factory=dict)

    @property
    def signed_error(self) -> float:
        """(λ̂ − λ)/λ against Aoyagi's λ (the t → ∞ limit)."""
        return (self.llc_mean - self.aoyagi_lambda) / self.aoyagi_lambda

    def summary(self) -> str:
        return (f"DLN {self.widths}, rank {self.rank}: λ̂(nβ = {self.nbeta:.4g}, γ = {self.localization:.3g}) = "
                f"{self.llc_mean:.4f} ± {self.llc_se:.2g} (R̂ {self.rhat:.3f}, ESS {self.ess:.0f}); Aoyagi λ = "
                f"{self.aoyagi_lambda:.6g} (m = {self.aoyagi_multiplicity}), signed error {100 * self.signed_error:+.2f} %")


def rank_r_factors(widths: Sequence[int], rank: int) -> list[np.ndarray]:
    """Factors W*_i = [I_r 0; 0 0] (shape H_i × H_(i−1)): every factor of rank exactly r (slt.md §2)."""
    out = []
    for a, b in zip(widths[:-1], widths[1:]):
        W = np.zeros((b, a))
        W[np.arange(rank), np.arange(rank)] = 1.0
        out.append(W)
    return out


def gibbs_sweeps(Ws: list, Wstar: list, Sig: torch.Tensor, Syx: torch.Tensor, t, gamma: float, num_sweeps: int,
                 gen: torch.Generator, on_sweep=None) -> list:
    """Run ``num_sweeps`` blocked Gibbs sweeps in place on the chains' factors ``Ws`` (each (C, H_(i+1), H_i)).

    Potential per chain: t·ℓ(P) + (γ/2)Σ‖W_i − W*_i‖², ℓ(P) = ½⟨PΣ, P⟩ − ⟨P, Σ_yx⟩ (the Gaussian NLL
    ½‖y − Px‖² averaged over the data, up to ½ tr Σ_yy), P = W_L⋯W_1; ``t`` is a number or a (C,)
    tensor (one nβ per chain).  Given the others, W_i has precision t(BΣBᵀ ⊗ AᵀA) + γI and linear
    term t·AᵀΣ_yxBᵀ + γW*_i, diagonal in the eigenbases of AᵀA and BΣBᵀ.  After each sweep
    ``on_sweep(s, P)`` is called with the product P (C, H_L, H_0).  Returns ``Ws``.
    """
    L = len(Ws)
    C = Ws[0].shape[0]
    dev, dtype = Ws[0].device, Ws[0].dtype
    H = [Ws[0].shape[2]] + [W.shape[1] for W in Ws]
    eye = [torch.eye(h, dtype=dtype, device=dev).expand(C, h, h) for h in H]
    tt = t.reshape(C, 1, 1) if isinstance(t, torch.Tensor) else t
    for s in range(num_sweeps):
        # A_i = W_(L−1) ⋯ W_(i+1) from the factors above i (not yet redrawn in this ascending sweep),
        # B = W_(i−1) ⋯ W_0 from the ones already redrawn: O(L) products per sweep
        above = [eye[L]] * L
        for i in range(L - 2, -1, -1):
            above[i] = above[i + 1] @ Ws[i + 1]
        Bm = eye[0]
        for i in range(L):
            A = above[i]                                   # (C, H_L, H_(i+1))
            a, U = torch.linalg.eigh(A.transpose(1, 2) @ A)
            BS = Bm @ Sig                                  # Bm: (C, H_i, H_0)
            b, V = torch.linalg.eigh(BS @ Bm.transpose(1, 2))
            Lam = tt * a.clamp_min(0).unsqueeze(-1) * b.clamp_min(0).unsqueeze(-2) + gamma
            lin = tt * (A.transpose(1, 2) @ Syx @ Bm.transpose(1, 2)) + gamma * Wstar[i]
            h = U.transpose(1, 2) @ lin @ V
            xi = torch.randn(Lam.shape, generator=gen, dtype=dtype, device=dev)
            Ws[i] = U @ (h / Lam + xi / Lam.sqrt()) @ V.transpose(1, 2)
            Bm = Ws[i] @ Bm
        if on_sweep is not None:
            on_sweep(s, Bm)                                # Bm is now the whole product P
    return Ws


def factor_product(Ws: list) -> torch.Tensor:
    """P = W_L ⋯ W_1 (batched over leading dimensions)."""
    P = Ws[0]
    for W in Ws[1:]:
        P = W @ P
    return P


def quadratic_loss(P: torch.Tensor, Sig: torch.Tensor, Syx: torch.Tensor) -> torch.Tensor:
    """ℓ(P) = ½⟨PΣ, P⟩ − ⟨P, Σ_yx⟩ for a batch of products P (C, H_L, H_0)."""
    return 0.5 * torch.einsum("cij,jk,cik->c", P, Sig, P) - torch.einsum("cij,ij->c", P, Syx)


def dln_gibbs(widths: Sequence[int], nbeta: float, localization: float = 1.0, *, rank: int = 0,
              center: Sequence | None = None, input_cov=None, num_chains: int = 8, num_sweeps: int = 2000,
              num_burnin_sweeps: int | None = None, init: str = "center", seed: int = 0,
              device="cpu", dtype=torch.float64, progress: bool | str = "auto") -> DLNGibbsResult:
    """Exact finite-nβ λ̂ of a deep linear network by blocked Gibbs sampling (module docstring).

    widths: [H_0 (input), …, H_L (output)].  rank / center: the true point w* — by default the
    rank-``rank`` factor point (every factor [I_r 0; 0 0]; w* = 0 for rank 0); ``center`` gives
    the factors W*_i (H_i × H_(i−1)) explicitly.  input_cov: Σ = xᵀx/n (H_0 × H_0, symmetric PSD;
    default I, i.e. whitened inputs).  init: 'center' (chains start at w*, as the LLC samplers do)
    or 'prior' (a draw from the localisation Gaussian around w*).  The first ``num_burnin_sweeps``
    (default num_sweeps // 4) sweeps are discarded; λ̂'s standard error is sd(trace)/√ESS of the
    pooled trace (and at least the spread of the per-chain means over √chains).  ``progress``: see
    :mod:`deepeft.core.progress`.
    """
    H, r = check_dln(widths, rank)
    v = validate(DLN_GIBBS_PARAMS, nbeta=nbeta, localization=localization, num_chains=num_chains,
                 num_sweeps=num_sweeps, init=init)
    t, gamma, C, S = v["nbeta"], v["localization"], v["num_chains"], v["num_sweeps"]
    Bn = S // 4 if num_burnin_sweeps is None else validate(DLN_GIBBS_PARAMS, num_burnin_sweeps=num_burnin_sweeps)["num_burnin_sweeps"]
    if Bn > S - 2:
        raise ParameterError("num_burnin_sweeps", Bn, f"0 … num_sweeps − 2 = {S - 2}")
    dev = torch.device(device)
    L = len(H) - 1
    shapes = [(H[i + 1], H[i]) for i in range(L)]

    if center is None:
        Wstar = [torch.as_tensor(W, dtype=dtype, device=dev) for W in rank_r_factors(H, r)]
    else:
        if len(center) != L:
            raise ParameterError("center", f"{len(center)} factors", f"{L} factors of shapes {shapes}")
        Wstar = []
        for i, W in enumerate(center):
            W = torch.as_tensor(np.asarray(W, dtype=float), dtype=dtype, device=dev)
            if tuple(W.shape) != shapes[i]:
                raise ParameterError(f"center[{i}]", tuple(W.shape), f"shape {shapes[i]}")
            if not bool(torch.isfinite(W).all()):
                raise ParameterError(f"center[{i}]", "contains NaN/Inf", "finite values only")
            Wstar.append(W)
    if input_cov is None:
        Sig = torch.eye(H[0], dtype=dtype, device=dev)
    else:
        Sig = torch.as_tensor(np.asarray(input_cov, dtype=float), dtype=dtype, device=dev)
        if tuple(Sig.shape) != (H[0], H[0]) or not bool(torch.isfinite(Sig).all()):
            raise ParameterError("input_cov", tuple(Sig.shape), f"a finite {H[0]}×{H[0]} matrix (xᵀx/n)")
        if not torch.allclose(Sig, Sig.T, rtol=1e-10, atol=1e-12 * float(Sig.abs().max())):
            raise ParameterError("input_cov", "not symmetric", "a symmetric positive semi-definite matrix")
        if float(torch.linalg.eigvalsh(Sig)[0]) < -1e-10 * float(Sig.abs().max()):
            raise ParameterError("input_cov", "has a negative eigenvalue", "a symmetric positive semi-definite matrix")

    Pstar = factor_product(Wstar)
    gen = torch.Generator(device=dev).manual_seed(int(seed))
    if init == "center":
        Ws = [W.expand(C, *W.shape).clone() for W in Wstar]
    else:
        Ws = [W + torch.randn((C, *W.shape), generator=gen, dtype=dtype, device=dev) / math.sqrt(gamma) for W in Wstar]

    kept = []
    def record(s, P):
        if bar is not None:
            bar.update(1)
        if s >= Bn:  # noise-free teacher: t·(ℓ(P) − ℓ(P*)) = (t/2) tr[(P − P*)Σ(P − P*)ᵀ]
            D = P - Pstar
            kept.append(0.5 * t * torch.einsum("cij,jk,cik->c", D, Sig, D))

    with progress_bar(S, f"Gibbs {C} chains", progress=progress, unit="sweep") as bar:
        gibbs_sweeps(Ws, Wstar, Sig, Pstar @ Sig, t, gamma, S, gen, record)
    tr = torch.stack(kept, 1).cpu().numpy()
    per = tr.mean(1)
    e = ess(tr)
    # Monte-Carlo SE from the pooled trace's effective sample size (as estimate_llc), never below the
    # spread of the per-chain means (which alone is a noisy estimate with few chains)
    se = max(float(tr.std(ddof=1)) / math.sqrt(e), float(per.std(ddof=1)) / math.sqrt(C))
    lam, m = aoyagi_dln(H, r) if center is None else (float("nan"), 0)
    return DLNGibbsResult(
        llc_mean=float(per.mean()), llc_se=se, llc_per_chain=per, trace=tr,
        widths=H, rank=r, nbeta=t, localization=gamma, rhat=rhat(tr), ess=e,
        aoyagi_lambda=float(lam), aoyagi_multiplicity=int(m),
        config=dict(num_chains=C, num_sweeps=S, num_burnin_sweeps=Bn, init=init, seed=int(seed), device=str(dev),
                    input_cov="identity" if input_cov is None else "given", center="rank-r factor point" if center is None else "given"))

