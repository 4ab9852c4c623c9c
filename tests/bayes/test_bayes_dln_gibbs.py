"""The exact Gibbs reference for deep linear networks (deepeft.bayes.dln_gibbs) against closed forms,
quadrature and Aoyagi's λ."""
import math

import numpy as np
import pytest
from scipy import integrate

from deepeft.bayes import dln_gibbs
from deepeft.core.errors import ParameterError


def z(res, truth):
    return (res.llc_mean - truth) / res.llc_se


def test_single_layer_is_the_quadratic_closed_form():
    # L = 1: the potential is (t/2) tr[(W − W*) Σ (W − W*)ᵀ], Gaussian: E = ½ H_1 Σ_k t s_k/(t s_k + γ)
    rng = np.random.default_rng(0)
    A = rng.standard_normal((4, 4))
    Sig = A @ A.T / 4 + 0.1 * np.eye(4)
    t, g = 50.0, 2.0
    s = np.linalg.eigvalsh(Sig)
    truth = 0.5 * 3 * float(np.sum(t * s / (t * s + g)))
    res = dln_gibbs([4, 3], t, g, input_cov=Sig, num_chains=8, num_sweeps=1500, seed=1)
    assert abs(z(res, truth)) < 4, (res.llc_mean, res.llc_se, truth)
    assert res.llc_se < 0.01 * truth


def test_scalar_two_layer_matches_quadrature():
    # [1,1,1] at w* = 0: K = (t/2) w1² w2².  Integrating w1 out: E = ∫ p(w2) · ½ t w2²/(t w2² + γ) with
    # p(w2) ∝ exp(−γ w2²/2) (t w2² + γ)^(−1/2).
    t, g = 400.0, 1.0
    p = lambda u: math.exp(-g * u * u / 2) / math.sqrt(t * u * u + g)
    num = integrate.quad(lambda u: p(u) * 0.5 * t * u * u / (t * u * u + g), -np.inf, np.inf, epsabs=1e-13)[0]
    den = integrate.quad(p, -np.inf, np.inf, epsabs=1e-13)[0]
    truth = num / den
    res = dln_gibbs([1, 1, 1], t, g, num_chains=16, num_sweeps=4000, seed=2)
    assert abs(z(res, truth)) < 4, (res.llc_mean, res.llc_se, truth)
    assert truth < 0.5  # below λ = 1/2 (normal crossing k = (1,1), m = 2) at finite t


def test_rank_r_point_with_explicit_center_and_prior_start():
    # [4,3,4], r = 1: the default centre is the rank-1 factor point; passing it explicitly is identical,
    # and chains started from the localisation prior reach the same expectation
    from deepeft.bayes.dln_gibbs import rank_r_factors

    a = dln_gibbs([4, 3, 4], 1e3, 1.0, rank=1, num_chains=8, num_sweeps=1500, seed=3)
    b = dln_gibbs([4, 3, 4], 1e3, 1.0, center=rank_r_factors([4, 3, 4], 1), num_chains=8, num_sweeps=1500, seed=3)
    assert a.llc_mean == b.llc_mean
    c = dln_gibbs([4, 3, 4], 1e3, 1.0, rank=1, init="prior", num_chains=8, num_sweeps=1500, seed=4)
    assert abs(a.llc_mean - c.llc_mean) < 4 * math.hypot(a.llc_se, c.llc_se)
    assert a.rhat < 1.01 and a.ess > 1000


def test_10x6_finite_nbeta_expectation_approaches_aoyagi_from_below():
    # [10]*6 at w* = 0: λ = 30, m = 1.  The exact finite-t expectation rises towards λ (−6.8 %, −4.8 %,
    # −3.3 % at t = 1e3, 1e4, 1e5 with γ = 1); within 5 % from t = 1e4 on.
    # 2000 sweeps: the 10⁴ → 10⁵ step (0.44) must be resolved at 4σ, which 800 sweeps did only marginally
    vals = [dln_gibbs([10] * 6, t, 1.0, num_chains=8, num_sweeps=2000, seed=5) for t in (1e3, 1e4, 1e5)]
    for lo, hi in zip(vals, vals[1:]):
        assert hi.llc_mean - lo.llc_mean > 4 * math.hypot(lo.llc_se, hi.llc_se)
    assert all(v.llc_mean < 30 for v in vals)
    assert abs(vals[-1].signed_error) < 0.05 and abs(vals[1].signed_error) < 0.05
    assert vals[0].signed_error < -0.05


def test_bad_input():
    with pytest.raises(ParameterError, match="nbeta"):
        dln_gibbs([3, 3], 0.0)
    with pytest.raises(ParameterError, match="localization"):
        dln_gibbs([3, 3], 10.0, 0.0)
    with pytest.raises(ParameterError, match="rank"):
        dln_gibbs([3, 2, 3], 10.0, rank=3)
    with pytest.raises(ParameterError, match="widths"):
        dln_gibbs([3], 10.0)
    with pytest.raises(ParameterError, match="input_cov"):
        dln_gibbs([2, 2], 10.0, input_cov=[[1.0, 0.0], [0.0, -1.0]])
    with pytest.raises(ParameterError, match="center"):
        dln_gibbs([2, 2, 2], 10.0, center=[np.eye(2)])
    with pytest.raises(ParameterError, match="num_chains"):
        dln_gibbs([2, 2], 10.0, num_chains=1)


def test_gibbs_matches_mala_with_correlated_inputs_at_a_rank_one_point():
    # [5,3,4], r = 1, Σ = xᵀx/n far from I, γ = 5, nβ = 500: the Gibbs conditional's linear term (P* ≠ 0
    # through Σ) against Metropolis-adjusted Langevin on the same data (measured: 6.023 vs 6.008 ± 0.086)
    import torch
    from bayes_helpers import rank_r_point
    from deepeft.bayes import estimate_llc

    w, r, t, g = [5, 3, 4], 1, 500.0, 5.0
    m = rank_r_point(w, r)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(40, 5, generator=gen, dtype=torch.float64) @ torch.diag(
        torch.tensor([2.0, 1.0, 0.7, 0.5, 0.3], dtype=torch.float64))
    with torch.no_grad():
        y = m(x)
    gibbs = dln_gibbs(w, t, g, rank=r, input_cov=(x.T @ x / 40).numpy(), num_chains=8, num_sweeps=2000)
    mala = estimate_llc(m, (x, y), "gaussian_nll", sampler="mala", nbeta=t, localization=g, lr=2e-4, num_chains=8,
                        num_draws=800, num_burnin_steps=3000, num_steps_bw_draws=10, batch_size=40, seed=0)
    s = math.hypot(gibbs.llc_se, mala.llc_se)
    assert abs(gibbs.llc_mean - mala.llc_mean) < 4 * s, (gibbs.llc_mean, mala.llc_mean, s)
    assert mala.llc_se < 0.02 * gibbs.llc_mean and mala.diagnostics["rhat"] < 1.1


# ----------------------------------------------------------- estimate_llc(..., sampler="gibbs")
def _noisy_dln_problem():
    """[4,3,4] trained (LBFGS, full batch) on noisy rank-2 targets with correlated inputs: w* is a
    minimum of L_n with L_n(w*) > 0, P* is not the teacher — the general data case."""
    import torch
    from torch import nn

    gen = torch.Generator().manual_seed(1)
    x = torch.randn(60, 4, generator=gen, dtype=torch.float64) * torch.tensor([1.5, 1.0, 0.7, 0.4], dtype=torch.float64)
    A = torch.randn(4, 2, generator=gen, dtype=torch.float64) @ torch.randn(2, 4, generator=gen, dtype=torch.float64)
    y = x @ A.T + 0.3 * torch.randn(60, 4, generator=gen, dtype=torch.float64)
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 3, bias=False), nn.Linear(3, 4, bias=False)).double()
    opt = torch.optim.LBFGS(m.parameters(), max_iter=500, tolerance_grad=1e-12, tolerance_change=1e-14, history_size=50)

    def closure():
        opt.zero_grad()
        loss = 0.5 * ((m(x) - y) ** 2).sum(1).mean()
        loss.backward()
        return loss

    opt.step(closure)
    return m, x, y


def test_estimate_llc_gibbs_on_noisy_data_matches_mala():
    # the Gibbs path uses the data only through Σ = xᵀx/n, Σ_yx = yᵀx/n and tr Σ_yy; Metropolis-adjusted
    # Langevin on the same model and data is the independent reference (measured: 6.755 ± 0.020 vs
    # 6.766 ± 0.035; two longer MALA runs 6.744 and 6.734 ± 0.027)
    import torch
    from deepeft.bayes import estimate_llc

    m, x, y = _noisy_dln_problem()
    kw = dict(nbeta=200.0, localization=5.0, num_chains=8)
    gibbs = estimate_llc(m, (x, y), "gaussian_nll", sampler="gibbs", num_draws=2000, num_burnin_steps=200, seed=0, **kw)
    mala = estimate_llc(m, (x, y), "gaussian_nll", sampler="mala", lr=5e-4, num_draws=1000, num_burnin_steps=2000,
                        num_steps_bw_draws=10, seed=1, **{**kw, "num_chains": 16})
    s = math.hypot(gibbs.llc_se, mala.llc_se)
    assert abs(gibbs.llc_mean - mala.llc_mean) < 4 * s, (gibbs.llc_mean, mala.llc_mean, s)
    with torch.no_grad():
        assert gibbs.init_loss == pytest.approx(float(0.5 * ((m(x) - y) ** 2).sum(1).mean()), rel=1e-12)
    assert gibbs.ok and gibbs.diagnostics["rhat"] < 1.01 and gibbs.llc_se < 0.005 * gibbs.llc_mean
    assert not any("relaxation" in w for w in gibbs.diagnostics["warnings"])
    # the final states are models: each carries its chain's factors
    res = gibbs.samples
    models = res.final_models(m)
    assert len(models) == 8 and all(torch_allclose_flat(mm, res.final_flat[i]) for i, mm in enumerate(models))


def torch_allclose_flat(model, flat):
    import torch

    return torch.allclose(torch.cat([p.detach().reshape(-1) for p in model.parameters()]), flat.to(torch.float64))


def test_estimate_llc_gibbs_equals_dln_gibbs_and_mse_is_a_rescaled_temperature():
    # whitened inputs and a zero teacher at w* = 0 are dln_gibbs' setting: the same sweeps, the same numbers;
    # 'mse' (mean over the H_L outputs too) at nβ equals 'gaussian_nll' at nβ·2/H_L exactly
    import torch
    from bayes_helpers import dln, whitened_inputs
    from deepeft.bayes import estimate_llc

    m, x = dln([5, 4, 5]), whitened_inputs(200, 5)
    y = torch.zeros(200, 5, dtype=torch.float64)
    kw = dict(sampler="gibbs", localization=1.0, num_chains=8, num_draws=1000, num_burnin_steps=200, seed=0)
    a = estimate_llc(m, (x, y), "gaussian_nll", nbeta=1e3, **kw)
    ref = dln_gibbs([5, 4, 5], 1e3, 1.0, num_chains=8, num_sweeps=1200, num_burnin_sweeps=200, seed=0)
    assert a.llc_mean == pytest.approx(ref.llc_mean, rel=1e-10)
    b = estimate_llc(m, (x, y), "mse", nbeta=1e3 * 5 / 2, **kw)
    assert b.llc_mean == pytest.approx(a.llc_mean, rel=1e-10)
    assert a.samples.step_loss.shape == (8, 1201) and a.loss_trace.shape == (8, 1000)  # states 0 … 1200, as SGLD


def test_estimate_llc_gibbs_10x6_within_5_percent_of_aoyagi():
    # the issue's [10]*6 case through the main LLC API (nβ = 1e5: exact expectation −3.3 %; at 1e4 it is
    # −4.8 %, too close to the 5 % line for a test); the chains here are exact Gibbs sweeps
    # (Langevin chains cannot equilibrate this geometry: docs/bayes.md)
    import torch
    from bayes_helpers import dln, whitened_inputs
    from deepeft.bayes import aoyagi_dln, estimate_llc

    m, x = dln([10] * 6), whitened_inputs(100, 10)
    y = torch.zeros(100, 10, dtype=torch.float64)
    r = estimate_llc(m, (x, y), "gaussian_nll", sampler="gibbs", nbeta=1e5, localization=1.0, num_chains=8,
                     num_draws=1500, num_burnin_steps=500, seed=1, require_rhat=True)
    lam = float(aoyagi_dln([10] * 6, 0)[0])
    assert lam == 30 and r.ok
    assert abs(r.llc_mean - lam) / lam < 0.05, r.summary()
    assert r.llc_mean < lam  # the finite-nβ expectation approaches λ from below


def test_estimate_llc_gibbs_bad_input():
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset
    from bayes_helpers import dln
    from deepeft.bayes import estimate_llc

    m = dln([3, 2, 3])
    x, y = torch.randn(20, 3, dtype=torch.float64), torch.randn(20, 3, dtype=torch.float64)
    with pytest.raises(ParameterError, match="model"):
        estimate_llc(nn.Sequential(nn.Linear(3, 3)).double(), (x, y), "mse", sampler="gibbs")
    with pytest.raises(ParameterError, match="model"):
        estimate_llc(nn.Sequential(nn.Linear(3, 3, bias=False), nn.Tanh(), nn.Linear(3, 3, bias=False)), (x, y), "mse",
                     sampler="gibbs")
    with pytest.raises(ParameterError, match="loss_fn"):
        estimate_llc(m, (x, y.argmax(1)), "cross_entropy", sampler="gibbs")
    with pytest.raises(ParameterError, match="localization"):
        estimate_llc(m, (x, y), "mse", sampler="gibbs", localization=0.0)
    with pytest.raises(ParameterError, match="data"):
        estimate_llc(m, DataLoader(TensorDataset(x, y), batch_size=5), "mse", sampler="gibbs")
    with pytest.raises(ParameterError, match="data"):
        estimate_llc(m, (x[:, :2], y), "mse", sampler="gibbs")
    with pytest.raises(ParameterError, match="params"):
        estimate_llc(m, (x, y), "mse", sampler="gibbs", params=["0.weight"])
    with pytest.raises(ParameterError, match="precondition"):
        estimate_llc(m, (x, y), "mse", sampler="gibbs", precondition="rmsprop")
    with pytest.raises(ParameterError, match="extrapolate_lr"):
        estimate_llc(m, (x, y), "mse", sampler="gibbs", extrapolate_lr=True)
    with pytest.raises(ParameterError, match="nbeta"):
        estimate_llc(m, (x, y), "mse", sampler="gibbs", nbeta=-1.0)


def test_beta_sweep_with_gibbs_sweeps():
    # one vectorised Gibbs call with one nβ per chain gives the exact λ̂(β) curve of a DLN (rising towards
    # λ = 8 for [5,4,5]) and the heat capacity from exact L_n values
    import torch
    from bayes_helpers import dln, whitened_inputs
    from deepeft.bayes import beta_sweep

    m, x = dln([5, 4, 5]), whitened_inputs(200, 5)
    y = torch.zeros(200, 5, dtype=torch.float64)
    sw = beta_sweep(m, (x, y), "gaussian_nll", nbetas=[1e2, 1e3, 1e4], localization=1.0, sampler="gibbs",
                    chains_per_temperature=4, num_draws=1000, num_burnin_steps=100, seed=0)
    ref = dln_gibbs([5, 4, 5], 1e3, 1.0, num_chains=8, num_sweeps=2000, seed=1)
    assert abs(sw.llc[1] - ref.llc_mean) < 4 * math.hypot(sw.llc_se[1], ref.llc_se)
    assert sw.llc[0] < sw.llc[2] < 8.0 and np.all(np.isfinite(sw.heat_capacity))  # 7.55 → 7.93 (±0.06)
    assert np.all(np.isnan(sw.lr))  # no step size
