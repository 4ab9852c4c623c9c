"""Deep linear networks vs Aoyagi's formula (slt.md §2): at w* = 0 (r = 0) and at rank-r factor points.

Setup: bias-free linear layers, whitened inputs (xᵀx/n = I exactly), noise-free teacher y = f_{w*}(x),
loss ½‖y − f‖² summed over outputs and averaged over samples, so nβ·(L_n − L_n(w*)) = (t/2)‖W − W*‖²_F
exactly (t = nβ) and Aoyagi's λ is the asymptotic target.  γ = 1.

Two references: Aoyagi's λ (the t → ∞ limit) and the exact finite-t expectation from the blocked Gibbs
sampler :func:`deepeft.bayes.dln_gibbs` (which sits below λ: −2.4 % for [5,4,5] and −2.7 % for [4,3,4]
at t = 10³).  The Langevin chains must match the Gibbs value within 4σ — that tests the sampler — and
Aoyagi's λ within 5 % + 4σ.  MALA is used because SGLD's step-size bias at these ε is +5 %; the burn-in
exceeds the localisation relaxation time 1/(εγ) = 10⁴ steps (shorter burn-ins bias λ̂ low).
"""
import pytest
import torch

from deepeft.bayes import aoyagi_dln, dln_gibbs, estimate_llc
from bayes_helpers import dln, rank_r_point, whitened_inputs


def run(widths, r, t, c, draws, burnin, sampler="sgld", chains=8, seed=0):
    m = rank_r_point(widths, r) if r else dln(widths)
    n = widths[0]
    x = whitened_inputs(n, n)
    with torch.no_grad():
        y = m(x)
    res = estimate_llc(m, (x, y), "gaussian_nll", sampler=sampler, nbeta=t, localization=1.0, lr=c / t,
                       num_chains=chains, num_draws=draws, num_burnin_steps=burnin, num_steps_bw_draws=10,
                       batch_size=n, seed=seed)
    lam = float(aoyagi_dln(widths, r)[0])
    return res, lam


def check(res, lam, rel=0.05, gibbs=None):
    err = res.llc_mean - lam
    assert abs(err) < rel * lam + 4 * res.llc_se, (
        f"λ̂ = {res.llc_mean:.4g} ± {res.llc_se:.2g} vs Aoyagi λ = {lam} (signed error {100 * err / lam:+.2f} %)")
    assert res.llc_se < 0.03 * lam  # the comparison is resolved, not drowned in noise
    assert not any(res.diagnostics["diverged"])
    assert res.diagnostics["rhat"] < 1.1, f"chains not mixed (R̂ = {res.diagnostics['rhat']:.3f})"
    if gibbs is not None:
        d = res.llc_mean - gibbs.llc_mean
        s = (res.llc_se ** 2 + gibbs.llc_se ** 2) ** 0.5
        assert abs(d) < 4 * s, f"λ̂ = {res.llc_mean:.4g} ± {res.llc_se:.2g} vs exact Gibbs {gibbs.llc_mean:.4g} ± {gibbs.llc_se:.2g} ({d / s:+.1f}σ)"


def test_dln_rank1_point_445():
    # [4,3,4], r = 1 with every factor of rank exactly 1: λ = 6, m = 1
    res, lam = run([4, 3, 4], 1, 1000.0, 0.1, draws=1500, burnin=15000, sampler="mala")
    check(res, lam, gibbs=dln_gibbs([4, 3, 4], 1000.0, 1.0, rank=1, num_sweeps=3000))


def test_dln_origin_545():
    # [5,4,5] at w* = 0: λ = 8, m = 1 (measured: MALA 7.796 ± 0.050, Gibbs 7.804 ± 0.010)
    res, lam = run([5, 4, 5], 0, 1000.0, 0.1, draws=1500, burnin=15000, sampler="mala")
    check(res, lam, gibbs=dln_gibbs([5, 4, 5], 1000.0, 1.0, num_sweeps=3000))


@pytest.mark.slow
def test_dln_origin_545_full_accuracy():
    res, lam = run([5, 4, 5], 0, 1e4, 0.2, draws=4000, burnin=60000, sampler="mala")
    check(res, lam, gibbs=dln_gibbs([5, 4, 5], 1e4, 1.0, num_sweeps=3000))


@pytest.mark.slow
def test_dln_rank2_point_deep():
    # [6,4,4,6], r = 2 at a rank-exactly-2 factor point: λ = 12, m = 1
    res, lam = run([6, 4, 4, 6], 2, 3000.0, 0.01, draws=3000, burnin=20000)
    check(res, lam)


def test_dln_10x6_underrelaxed_langevin_is_flagged():
    # The setting that gave λ̂ ≈ 25 (−16 %) in earlier sessions: burn-in far shorter than the localisation
    # relaxation time 1/(εγ) ≈ 3·10⁴ steps.  The estimate must come with that warning.
    with pytest.warns(Warning, match="relaxation time"):
        res, lam = run([10] * 6, 0, 1000.0, 0.03, draws=50, burnin=2000, sampler="mala", chains=4)
    assert res.diagnostics["localization_relaxation_steps"] == pytest.approx(1 / 3e-5)


@pytest.mark.slow
@pytest.mark.xfail(reason="Langevin dynamics cannot equilibrate [10]*6 at w* = 0: the exact Gibbs reference gives "
                          "27.96 / 28.57 / 29.01 at t = 1e3 / 1e4 / 1e5 (λ = 30), but at equilibrium the stiff "
                          "directions have curvature ~t·‖W‖⁸ ≈ 1e10·γ, so MALA started from Gibbs states accepts ~0 "
                          "at ε = 3e-5 and 0.03–0.85 at ε = 1e-7 (relaxation 1/(εγ) = 1e7 steps); started at w* it "
                          "stays in the less stiff region (λ̂ ≈ 25–26). See docs/bayes.md; estimate_llc(..., "
                          "sampler='gibbs') reaches it (test_bayes_dln_gibbs.py)", strict=False)
def test_dln_origin_10x6():
    # [10]*6 at w* = 0: λ = 30, m = 1 — the target value is right (dln_gibbs reaches −3.3 % at t = 1e5,
    # tests/bayes/test_bayes_dln_gibbs.py); a Langevin sampler does not get there in any affordable run.
    res, lam = run([10] * 6, 0, 1e4, 0.3, draws=2000, burnin=20000, sampler="mala")
    check(res, lam, gibbs=dln_gibbs([10] * 6, 1e4, 1.0, num_sweeps=1000))
