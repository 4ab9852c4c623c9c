"""Quadratic loss: exact E[λ̂] for exact (MALA) sampling and the SGLD step-size-biased value (slt.md §3)."""
import math

import numpy as np
import pytest
import torch

from deepeft.bayes import estimate_llc, quadratic_llc_expectation, sample, heat_capacity
from bayes_helpers import Potential, dummy_data, mean_loss, within

H = torch.tensor([0.5, 1.0, 2.0, 4.0, 8.0], dtype=torch.float64)
T, GAMMA = 50.0, 20.0


def quad_model():
    return Potential(lambda w: 0.5 * (H * w * w).sum(), torch.zeros(5))


def test_sgld_matches_step_size_biased_expectation():
    eps = 0.006  # ε·a_max = 0.006·420 = 2.5: strongly biased but stable
    res = estimate_llc(quad_model(), dummy_data(), mean_loss, lr=eps, nbeta=T, localization=GAMMA,
                       num_chains=8, num_draws=3000, num_burnin_steps=200, seed=1)
    truth = quadratic_llc_expectation(H.tolist(), T, GAMMA, lr=eps)
    exact = quadratic_llc_expectation(H.tolist(), T, GAMMA)
    ok, msg = within(res.llc_mean, res.llc_se, truth)
    assert ok, msg
    assert abs(truth - exact) > 8 * res.llc_se  # the test resolves the step-size bias
    assert not any(res.diagnostics["diverged"])


def test_step_size_extrapolation_removes_first_order_bias():
    # half the chains at ε, half at ε/2: E = 2 f(ε/2) − f(ε) with f the SGLD expectation above
    eps = 0.003
    f = lambda e: quadratic_llc_expectation(H.tolist(), T, GAMMA, lr=e)  # noqa: E731
    exact = quadratic_llc_expectation(H.tolist(), T, GAMMA)
    truth = 2 * f(eps / 2) - f(eps)
    assert abs(truth - exact) < 0.2 * abs(f(eps) - exact)  # analytic: the residual bias is second order
    res = estimate_llc(quad_model(), dummy_data(), mean_loss, lr=eps, nbeta=T, localization=GAMMA, num_chains=16,
                       num_draws=3000, num_burnin_steps=200, seed=5, extrapolate_lr=True)
    ok, msg = within(res.llc_mean, res.llc_se, truth)
    assert ok, msg
    ex = res.diagnostics["extrapolation"]
    ok, msg = within(ex["llc_lr"], ex["llc_se_lr"], f(eps))
    assert ok, msg
    ok, msg = within(ex["llc_half_lr"], ex["llc_se_half_lr"], f(eps / 2))
    assert ok, msg
    assert abs(f(eps) - exact) > 6 * res.llc_se  # the plain estimate's bias is resolved; the extrapolated one removes it
    assert res.config["lr"] == [eps] * 8 + [eps / 2] * 8


def test_mala_matches_exact_expectation():
    res = estimate_llc(quad_model(), dummy_data(), mean_loss, sampler="mala", lr=0.004, nbeta=T, localization=GAMMA,
                       num_chains=8, num_draws=3000, num_burnin_steps=200, seed=2)
    truth = quadratic_llc_expectation(H.tolist(), T, GAMMA)
    ok, msg = within(res.llc_mean, res.llc_se, truth)
    assert ok, msg
    assert 0.5 < np.mean(res.diagnostics["mala_acceptance"]) < 1.0


def test_heat_capacity_of_gaussian_posterior():
    # t L = ½ Σ t h u², u_i ~ N(0, 1/a_i): Var = ½ Σ (t h_i / a_i)²
    res = sample(quad_model(), dummy_data(), mean_loss, sampler="mala", lr=0.004, nbeta=T, localization=GAMMA,
                 num_chains=8, num_draws=3000, num_burnin_steps=200, seed=3)
    a = T * H.numpy() + GAMMA
    truth = 0.5 * np.sum((T * H.numpy() / a) ** 2)
    C, se = heat_capacity(res)
    ok, msg = within(C, se, truth)
    assert ok, msg


def test_zero_localization_gives_half_dimension():
    res = estimate_llc(quad_model(), dummy_data(), mean_loss, lr=0.0005, nbeta=T, localization=0.0,
                       num_chains=8, num_draws=3000, num_burnin_steps=300, num_steps_bw_draws=2, seed=4)
    truth = quadratic_llc_expectation(H.tolist(), T, 0.0, lr=0.0005)
    ok, msg = within(res.llc_mean, res.llc_se, truth)
    assert ok, msg
    assert truth == pytest.approx(2.5, rel=0.06)


def test_top_hessian_eigenvalue_lanczos():
    from deepeft.bayes.samplers import _Engine, select_parameters, top_hessian_eigenvalue

    def top(K, w0):
        m = Potential(K, w0)
        lay = select_parameters(m)
        return top_hessian_eigenvalue(_Engine(m, lay, mean_loss), lay.flatten(dict(m.named_parameters())), dummy_data(), None)

    assert top(lambda w: 0.5 * (H * w * w).sum(), torch.zeros(5)) == pytest.approx(8.0, rel=1e-10)
    assert top(lambda w: 0.5 * (-9 * w[0] ** 2 + w[1] ** 2), torch.zeros(2)) == pytest.approx(9.0, rel=1e-10)  # |largest|
    assert top(lambda w: (w ** 4).sum(), torch.zeros(3)) == 0.0
    # dense 300-d quadratic with a clustered top of the spectrum and a rank-deficient one
    g = torch.Generator().manual_seed(0)
    Q, _ = torch.linalg.qr(torch.randn(300, 300, generator=g, dtype=torch.float64))
    for ev in (torch.linspace(0.0, 10.0, 300, dtype=torch.float64),
               torch.cat([torch.zeros(290, dtype=torch.float64), torch.linspace(1.0, 3.0, 10, dtype=torch.float64)])):
        A = (Q * ev) @ Q.T
        assert top(lambda w: 0.5 * w @ A @ w, torch.zeros(300)) == pytest.approx(float(ev.max()), rel=2e-3)
