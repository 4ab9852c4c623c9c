"""Free energy and heat: Bayesian linear regression WBIC and thermodynamic integration vs the
closed forms, heat capacity, β-sweeps vs exact quadratic curves (slt.md §3–4)."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from deepeft.bayes import (beta_sweep, blr_free_energy, blr_heat_capacity, blr_wbic, quadratic_llc_expectation,
                           sample, thermodynamic_integration, variance_estimate, wbic)
from bayes_helpers import Potential, dummy_data, mean_loss, within

SIGMA, S = 0.5, 1.0


def blr_problem(n=50, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = X @ torch.tensor([1.0, -0.5, 0.3], dtype=torch.float64) + SIGMA * torch.randn(n, generator=g, dtype=torch.float64)
    model = nn.Linear(d, 1, bias=False).double()

    def nll(out, yy):  # average Gaussian NLL with its constants
        return (0.5 * (out.squeeze(-1) - yy) ** 2 / SIGMA ** 2).mean() + 0.5 * math.log(2 * math.pi * SIGMA ** 2)

    return model, X, y, nll


def test_wbic_matches_closed_form():
    model, X, y, nll = blr_problem()
    r = wbic(model, (X, y), nll, prior_precision=1 / S ** 2, sampler="mala", lr_factor=0.2, num_chains=4,
             num_draws=1200, num_burnin_steps=200, seed=0)
    ok, msg = within(r.value, r.se, blr_wbic(X.numpy(), y.numpy(), SIGMA, S))
    assert ok, msg


def test_thermodynamic_integration_matches_exact_free_energy():
    model, X, y, nll = blr_problem()
    r = thermodynamic_integration(model, (X, y), nll, prior_precision=1 / S ** 2, sampler="mala", n_betas=17,
                                  chains_per_temperature=2, num_draws=1500, num_burnin_steps=200, lr_factor=0.2, seed=0)
    truth = blr_free_energy(X.numpy(), y.numpy(), SIGMA, S)
    err = math.hypot(r.se, r.quadrature_error)
    ok, msg = within(r.value, err, truth)
    assert ok, msg
    assert r.quadrature_error < r.se  # the grid is fine enough that Monte-Carlo noise dominates


def test_heat_capacity_blr():
    model, X, y, nll = blr_problem()
    n = X.shape[0]
    beta = 1 / math.log(n)
    res = sample(model, (X, y), nll, sampler="mala", lr=0.2 / (beta * 4 * n / SIGMA ** 2), nbeta=n * beta,
                 localization=1 / S ** 2, center="zero", num_chains=8, num_draws=1200, num_burnin_steps=200, seed=1)
    C, se = variance_estimate(res)
    ok, msg = within(C, se, blr_heat_capacity(X.numpy(), y.numpy(), SIGMA, S, beta))
    assert ok, msg


def test_beta_sweep_quadratic_curves():
    h = torch.tensor([0.5, 2.0, 8.0], dtype=torch.float64)
    model = Potential(lambda w: 0.5 * (h * w * w).sum(), torch.zeros(3))
    nbs = [5.0, 20.0, 80.0]
    res = beta_sweep(model, dummy_data(), mean_loss, nbetas=nbs, chains_per_temperature=4, sampler="mala",
                     lr_factor=0.3, localization=4.0, num_draws=1500, num_burnin_steps=100, seed=2)
    for k, t in enumerate(nbs):
        ok, msg = within(res.llc[k], res.llc_se[k], quadratic_llc_expectation(h.tolist(), t, 4.0))
        assert ok, f"nβ={t}: {msg}"
        a = t * h.numpy() + 4.0
        ok, msg = within(res.heat_capacity[k], res.heat_capacity_se[k], 0.5 * np.sum((t * h.numpy() / a) ** 2))
        assert ok, f"C at nβ={t}: {msg}"
    assert res.llc[0] < res.llc[1] < res.llc[2]
