"""Issue 11 item 5: thermodynamic integration's default β grid on the EXACT integrand of a 1000-sample
Bayesian linear regression (slt.md §4): the quadrature alone must reproduce F_n, and its error
estimate must bound the true discretisation error (before: Simpson on 17 log-uniform points, +1.03 nats)."""
import math

import numpy as np
import pytest

from deepeft.bayes import blr_expected_nll, blr_free_energy
from deepeft.bayes.thermo import _ti_quadrature, clenshaw_curtis

N, D, SIGMA, S = 1000, 3, 0.5, 1.0


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, D))
    y = X @ np.array([1.0, -0.5, 0.3]) + SIGMA * rng.standard_normal(N)
    return X, y


def default_nodes(K, n):
    # the grid thermodynamic_integration builds by default (same code path is used below via its rule)
    xc, _ = clenshaw_curtis(K - 1)
    bs = np.exp(0.5 * math.log(1 / (100 * n)) * (1 - xc[::-1]))
    bs[-1] = 1.0
    return bs


@pytest.mark.parametrize("K", [17, 33])
def test_default_grid_on_exact_integrand(problem, K):
    X, y = problem
    bs = default_nodes(K, N)
    vals = np.array([blr_expected_nll(X, y, SIGMA, S, b) for b in np.concatenate([[0.0], bs])])
    F, se, qerr, _ = _ti_quadrature(bs, vals, np.zeros_like(vals), "cc")
    truth = blr_free_energy(X, y, SIGMA, S)
    assert abs(F - truth) < 1e-3, (F, truth)
    assert abs(F - truth) <= qerr  # the reported discretisation error covers the true one


def test_clenshaw_curtis_exact_for_polynomials():
    x, w = clenshaw_curtis(16)
    for k in range(0, 16):
        assert w @ x ** k == pytest.approx((1 - (-1) ** (k + 1)) / (k + 1), abs=1e-13)
