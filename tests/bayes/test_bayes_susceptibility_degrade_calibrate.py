"""Susceptibilities vs the Gaussian closed form, degradation to a target Δloss, step-size calibration."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from deepeft.bayes import calibrate, default_nbeta, degrade, quadratic_llc_expectation, susceptibilities
from bayes_helpers import Potential, dummy_data, mean_loss, within


def test_per_sample_loss_susceptibility_matches_gaussian_closed_form():
    # linear regression at w* = least squares; posterior N(w*, Σ), Σ = (t XᵀX/n + γ)⁻¹ (loss = ½(y − xᵀw)²).
    g = torch.Generator().manual_seed(0)
    n, d, t, gam = 64, 2, 40.0, 2.0
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = X @ torch.tensor([1.0, -1.0], dtype=torch.float64) + 0.3 * torch.randn(n, generator=g, dtype=torch.float64)
    wls = torch.linalg.lstsq(X, y[:, None]).solution[:, 0]
    model = nn.Linear(d, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(wls[None])
    loss = lambda out, yy: 0.5 * ((out.squeeze(-1) - yy) ** 2).mean()
    probe = (X[:3], y[:3])
    res = susceptibilities(model, (X, y), loss, probe=probe, sampler="mala", lr=0.05, nbeta=t, localization=gam,
                           num_chains=8, num_draws=1500, num_burnin_steps=100, seed=0)
    Xn, yn, w0 = X.numpy(), y.numpy(), wls.numpy()
    Q = Xn.T @ Xn / n
    Sig = np.linalg.inv(t * Q + gam * np.eye(d))
    # u = w − w*: tL_n = const + ½ uᵀ(tQ)u (gradient 0 at least squares);  ℓ_i = const + a_iᵀu + ½ uᵀ(x_i x_iᵀ)u
    for i in range(3):
        xi = Xn[i]
        a_i = -(yn[i] - xi @ w0) * xi
        # Cov(½uᵀAu + aᵀu, ½uᵀBu) = ½ tr(AΣBΣ) for Gaussian u with mean 0
        truth = 0.5 * np.trace(np.outer(xi, xi) @ Sig @ (t * Q) @ Sig)
        ok, msg = within(res.chi[i], res.chi_se[i], truth)
        assert ok, f"probe {i}: {msg}"


def test_degrade_reaches_target_delta_loss():
    h = torch.tensor([1.0] * 6, dtype=torch.float64)
    model = Potential(lambda w: 0.5 * (h * w * w).sum(), torch.zeros(6))
    target = 0.05  # quadratic: E[Δ] = ½ Σ h/(t h + γ) → t ≈ 60 with γ = 0
    res = degrade(model, dummy_data(100), mean_loss, target_delta_loss=target, localization=0.0, lr=1e-3,
                  num_models=16, num_steps=2000, pilot_steps=600, seed=0)
    assert len(res.models) == 16
    exact_t = 0.5 * 6 / target
    assert res.nbeta == pytest.approx(exact_t, rel=0.25)
    # each degraded model's Δ is χ²₆/(2t): mean within 4 standard errors of the target
    se = res.delta_loss.std(ddof=1) / math.sqrt(len(res.delta_loss))
    assert abs(res.delta_loss.mean() - 3 / res.nbeta) < 4 * se
    assert abs(res.delta_loss.mean() - target) < 0.3 * target
    assert all(float(torch.linalg.norm(m.w)) > 0 for m in res.models) and float(model.w.abs().sum()) == 0.0


def test_degrade_automatic_step_size_on_a_stiff_potential():
    """lr=None: ε = 0.4/(nβ·h + γ) at every temperature (a fixed ε = 1e-4 would be 500× beyond the
    stability bound here); the target lies three decades beyond the first pilot grid, so the grid is
    extended.  Each model is an exact SGLD stationary draw: E[Δ] = Σ h/(2a(1 − εa/4)), a = nβh + γ."""
    d, h, gam = 4, 1e3, 1.0
    model = Potential(lambda w: 0.5 * h * (w * w).sum(), torch.zeros(d))
    res = degrade(model, dummy_data(100), mean_loss, target_delta_loss=1e-4, localization=gam, num_models=32,
                  num_steps=200, seed=1)
    a = res.nbeta * h + gam
    assert res.lr * a == pytest.approx(0.4, rel=1e-9) and len(res.models) == 32
    assert max(res.pilot["nbeta"]) > 1e3 * default_nbeta(100)  # an extension round ran
    truth = d * h / (2 * a * (1 - res.lr * a / 4))
    ok, msg = within(res.delta_loss.mean(), res.delta_loss.std(ddof=1) / math.sqrt(32), truth)
    assert ok, msg
    assert res.delta_loss.mean() == pytest.approx(1e-4, rel=0.3)


def test_calibration_stays_inside_stability_bound():
    h = torch.tensor([0.1, 1.0, 10.0], dtype=torch.float64)
    model = Potential(lambda w: 0.5 * (h * w * w).sum(), torch.zeros(3))
    t, gam = 100.0, 1.0
    a_max = t * 10.0 + gam
    cal = calibrate(model, dummy_data(), mean_loss, nbeta=t, localization=gam, lrs=[1e-5, 1e-4, 1e-3, 5e-3, 1e-2],
                    num_steps=200, seed=0)
    rows = {r["lr"]: r for r in cal.table}
    assert not rows[1e-2]["stable"] and "stability bound" in rows[1e-2]["verdict"]  # ε·a_max = 10 ≥ 4
    assert cal.lr * a_max < 4 and rows[cal.lr]["acceptance"] >= 0.99
    # exact SGLD bias of λ̂ on this quadratic (slt.md §3): +1.2 % at ε = 1e-4, +12.5 % at 1e-3 (issue 11)
    a = t * h.numpy() + gam
    bias = (t * h.numpy() / (a * (1 - cal.lr * a / 4))).sum() / (t * h.numpy() / a).sum() - 1
    assert cal.lr == 1e-4 and bias < 0.05
    auto = calibrate(model, dummy_data(), mean_loss, nbeta=t, localization=gam, num_steps=200, seed=0)
    assert auto.lr * a_max < 4 and "largest" in auto.reason
    assert auto.num_burnin_steps == math.ceil(3 / (auto.lr * gam)) and "num_burnin_steps" in auto.summary()
