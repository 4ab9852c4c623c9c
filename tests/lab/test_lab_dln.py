"""Problem 4: the exact finite-width DLN prior and posterior vs NNGP and vs deepeft's Gibbs sampler."""
import math

import numpy as np
import pytest

from deepeft.core.errors import ParameterError
from deepeft.lab import dln as D


@pytest.mark.parametrize("widths", [[1], [2], [1, 1], [3, 7], [16, 16], [512, 512, 512]])
def test_scale_density_moments_are_exact(widths):
    """E U = 1 and E U² = Π(1 + 2/n) (u ~ Gamma(n/2, rate n/2)) from the convolved grid density."""
    s, ld = D.log_scale_grid(widths)
    h = s[1] - s[0]
    p = np.exp(ld)
    assert np.sum(p) * h == pytest.approx(1, abs=1e-12)
    assert np.sum(p * np.exp(s)) * h == pytest.approx(1, rel=1e-9)
    assert np.sum(p * np.exp(2 * s)) * h == pytest.approx(math.prod(1 + 2 / n for n in widths), rel=1e-9)


def test_prior_density_fourth_moment():
    # widths ≥ 4: the density is smooth at f = 0 (for n ≤ 2 it has an integrable cusp there that the
    # test's own f-quadrature would not resolve)
    f = np.linspace(-40, 40, 4001)
    for ws in ([4, 6], [8]):
        dens = D.prior_density(f, 1.3, ws)
        h = f[1] - f[0]
        assert np.sum(dens) * h == pytest.approx(1, rel=1e-8)
        m2, m4 = np.sum(dens * f ** 2) * h, np.sum(dens * f ** 4) * h
        assert m2 == pytest.approx(1.3, rel=1e-7)
        assert m4 / m2 ** 2 - 3 == pytest.approx(D.excess_kurtosis(ws), rel=1e-6)


def test_infinite_width_is_the_gp_posterior_and_one_layer_too():
    X, y, Xt = D.toy_data(4, 6, 3, noise=0.5, seed=0)
    K = X @ X.T / 4
    ks = Xt @ X.T / 4
    A = K + 0.25 * np.eye(6)
    mean = ks @ np.linalg.solve(A, y)
    var = np.einsum("ij,ij->i", Xt, Xt) / 4 - np.einsum("ij,ji->i", ks, np.linalg.solve(A, ks.T))
    logz = -0.5 * (6 * math.log(2 * math.pi) + np.linalg.slogdet(A)[1] + y @ np.linalg.solve(A, y))
    for r in (D.posterior_predictive(X, y, Xt, None, noise=0.5, depth=3), D.posterior_predictive(X, y, Xt, [], noise=0.5)):
        assert np.allclose(r["mean"], mean, rtol=1e-12, atol=1e-12)
        assert np.allclose(r["variance"], var, rtol=1e-10, atol=1e-12)
        assert r["log_evidence"] == pytest.approx(logz, rel=1e-12)


def test_posterior_grid_converged_and_approaches_nngp_as_one_over_n():
    X, y, Xt = D.toy_data(5, 6, 3, noise=0.5, seed=1)
    r = D.posterior_predictive(X, y, Xt, [4, 4], noise=0.5)
    r2 = D.posterior_predictive(X, y, Xt, [4, 4], noise=0.5, step=(r["s"][1] - r["s"][0]) / 2)
    assert np.allclose(r["mean"], r2["mean"], rtol=1e-10) and r["log_evidence"] == pytest.approx(r2["log_evidence"], rel=1e-10)
    inf = D.posterior_predictive(X, y, Xt, None, noise=0.5, depth=3)
    d = {n: D.posterior_predictive(X, y, Xt, [n, n], noise=0.5)["mean"] - inf["mean"] for n in (256, 512)}
    # Δ(n) = c/n + O(1/n²): Δ(2n)/Δ(n) = ½(1 + O(1/n)); |O(1/n)| ~ a few/n ≈ 1 % at n = 256
    assert np.allclose(d[512] / d[256], 0.5, atol=0.02)


def test_gibbs_sampler_matches_the_exact_finite_width_posterior_and_not_the_nngp():
    """deepeft's Gibbs sampler on a real nn.Sequential DLN (width = d = 3, depth 3) vs eq. (2), |z| < 4;
    the NNGP second moments are > 4σ away (the test can tell finite from infinite width)."""
    X, y, Xt = D.toy_data(3, 5, 3, noise=1.0, seed=2)
    ex = D.posterior_predictive(X, y, Xt, [3, 3], noise=1.0)
    nngp = D.posterior_predictive(X, y, Xt, None, noise=1.0, depth=3)
    mc = D.sample_posterior_predictive(X, y, Xt, 3, 3, num_chains=8, num_draws=600, seed=2)
    assert np.all(np.abs(mc["mean"] - ex["mean"]) < 4 * mc["mean_se"])
    assert np.all(np.abs(mc["second_moment"] - ex["second_moment"]) < 4 * mc["second_moment_se"])
    assert np.max(np.abs(mc["second_moment"] - nngp["second_moment"]) / mc["second_moment_se"]) > 4


def test_bad_inputs_name_the_parameter():
    X, y, Xt = D.toy_data(3, 5, 2, seed=0)
    with pytest.raises(ParameterError, match=r"widths\[0\]"):
        D.posterior_predictive(X, y, Xt, [0])
    with pytest.raises(ParameterError, match=r"widths\[1\]"):
        D.posterior_predictive(X, y, Xt, [2, 2.5])
    with pytest.raises(ParameterError, match="noise"):
        D.posterior_predictive(X, y, Xt, [2], noise=0.0)
    with pytest.raises(ParameterError, match="noise"):
        D.posterior_predictive(X, y, Xt, [2], noise=-1.0)
    with pytest.raises(ParameterError, match="depth"):
        D.posterior_predictive(X, y, Xt, [2, 2], depth=2)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ParameterError, match="X"):
        D.posterior_predictive(bad, y, Xt, [2])
    with pytest.raises(ParameterError, match="Xtest"):
        D.posterior_predictive(X, y, Xt[:, :2], [2])
    with pytest.raises(ParameterError, match="X"):
        D.sample_posterior_predictive(X, y, Xt, 4, 2)   # d = 3 ≠ width 4
    with pytest.raises(ParameterError, match="k"):
        D.prior_density([0.0], -1.0, [2])
