"""Problem 3: ridge asymptotics vs exact finite-p formulas and simulation; BLR free energy and λ̂."""
import math

import numpy as np
import pytest

from deepeft.bayes import blr_free_energy
from deepeft.core.errors import ParameterError
from deepeft.lab import regression as R


def test_mp_stieltjes_derivative_and_ridgeless_limit():
    for g in (0.3, 0.9, 1.0, 1.7, 4.0):
        for lam in (1e-3, 0.1, 2.0):
            m, dm = R.mp_stieltjes(g, lam)
            h = 1e-6 * lam
            fd = -(R.mp_stieltjes(g, lam + h)[0] - R.mp_stieltjes(g, lam - h)[0]) / (2 * h)  # m'(z) at z = −λ
            assert dm == pytest.approx(fd, rel=1e-6)
            # the self-consistency γλm² + (1 − γ + λ)m − 1 = 0
            assert g * lam * m * m + (1 - g + lam) * m - 1 == pytest.approx(0, abs=1e-12)
    for g in (0.3, 0.7, 1.5, 4.0):
        assert R.ridge_risk(g, 1e-9, 1.0, 0.25)["risk"][0] == pytest.approx(R.ridge_risk(g, 0.0, 1.0, 0.25)["risk"][0], rel=1e-5)


def test_ridge_at_optimal_lambda_is_the_minimum():
    for g in (0.5, 2.0):
        lam = R.optimal_ridge(g, 1.0, 0.25)
        r0 = R.ridge_risk(g, lam, 1.0, 0.25)["risk"][0]
        assert r0 < R.ridge_risk(g, 1.05 * lam, 1.0, 0.25)["risk"][0]
        assert r0 < R.ridge_risk(g, 0.95 * lam, 1.0, 0.25)["risk"][0]


def test_ridgeless_simulation_matches_the_exact_finite_p_risk():
    """Monte Carlo over X against eq. (3) (Wishart inverse moments): exact at finite p, |z| < 4."""
    p = 40
    out = R.simulate_ridge(p, [0.3, 0.6, 1.6, 3.0], [0.0], draws=300, r2=1.0, sigma2=0.25, seed=3)
    exact = np.array([R.ridgeless_risk_finite(int(n), p, 1.0, 0.25) for n in out["n"]])
    z = (out["mean"][:, 0] - exact) / out["se"][:, 0]
    assert np.all(np.abs(z) < 4), z


def test_finite_p_ridgeless_deviation_is_one_over_distance_to_threshold():
    n = 200
    for p in (100, 150, 190):
        rel = R.ridgeless_risk_finite(n, p, 1, 1) / R.ridge_risk(p / n, 0.0, 1, 1)["risk"][0] - 1
        assert rel == pytest.approx(1 / (n - p - 1), rel=1e-12)
    assert R.ridgeless_risk_finite(100, 101) == math.inf


def test_ridge_asymptotics_after_removing_the_one_over_p_term():
    """Ridge λ > 0: R(p) = R_∞ + c/p + O(1/p²); Richardson 2R(2p) − R(p) vs eq. (2) within 4σ."""
    gam, lams = [0.25, 1.0, 2.5], [0.05, 0.5]
    a = R.simulate_ridge(50, gam, lams, draws=400, sigma2=0.25, seed=1)
    b = R.simulate_ridge(100, gam, lams, draws=400, sigma2=0.25, seed=2)
    assert np.allclose(a["gamma_effective"], b["gamma_effective"])
    asym = np.stack([R.ridge_risk(a["gamma_effective"], l, 1.0, 0.25)["risk"] for l in lams], 1)
    rr = 2 * b["mean"] - a["mean"]
    se = np.sqrt(4 * b["se"] ** 2 + a["se"] ** 2)
    assert np.all(np.abs(rr - asym) < 4 * se), (rr - asym) / se


def test_linear_random_features_reduce_to_least_squares():
    """N ≥ d linear features span x: with λ → 0 the predictor is least squares, risk σ²d/(n − d − 1) (eq. 3)."""
    d, n = 8, 30
    out = R.simulate_random_features(d, n, [16], lam=1e-9, kinds=("linear",), draws=400, n_test=400,
                                     sigma2=0.25, seed=0)
    exact = 0.25 * d / (n - d - 1)
    assert abs(out["mean"][0, 0] - exact) < 4 * out["se"][0, 0]


def test_random_features_relu_and_gaussian_equivalent_run():
    out = R.simulate_random_features(10, 20, [5, 40], lam=1e-2, draws=3, n_test=50, seed=0)
    assert out["mean"].shape == (3, 2) and np.all(np.isfinite(out["mean"])) and np.all(out["mean"] > 0)


def test_blr_mean_free_energy_equals_the_noise_average_of_the_exact_formula():
    """Eq. (4) = E_ε[F_n(Xw0 + ε)] − E n L_n(w0); E_ε F = F(Xw0) + ½σ² tr C⁻¹ (F quadratic in y)."""
    rng = np.random.default_rng(0)
    sg, s = 0.5, 1.3
    for n, p in ((12, 4), (5, 9)):
        X = rng.standard_normal((n, p))
        w0 = rng.standard_normal(p)
        C = sg ** 2 * np.eye(n) + s ** 2 * X @ X.T
        EF = blr_free_energy(X, X @ w0, sg, s) + 0.5 * sg ** 2 * np.trace(np.linalg.inv(C))
        expect = EF - (0.5 * n * math.log(2 * math.pi * sg ** 2) + 0.5 * n)
        assert R.blr_mean_free_energy(X, w0, sg, s) == pytest.approx(expect, rel=1e-10)


def test_blr_free_energy_slope_tends_to_d_over_2():
    out = R.blr_free_energy_curve(4, np.geomspace(1, 1e6, 40).astype(int), sigma=0.5, seed=0)
    assert out["lambda_eff"][-1] == pytest.approx(2.0, abs=0.05)


@pytest.mark.parametrize("p", [3, 20])
def test_blr_llc_measured_matches_exact(p):
    """estimate_llc (MALA) against ½Σ th/(th + γ) within 4σ; for p > n it is near n/2, not p/2."""
    rng = np.random.default_rng(p)
    n = 10
    X = rng.standard_normal((n, p))
    y = X @ rng.standard_normal(p) / math.sqrt(p) + 0.5 * rng.standard_normal(n)
    ex = R.blr_llc_exact(X, 100.0, 1.0)
    m = R.blr_llc_measured(X, y, nbeta=100.0, localization=1.0, num_chains=4, num_draws=1200, seed=p)
    assert abs(m["llc_mean"] - ex) < 4 * m["llc_se"]
    if p > n:
        assert ex < n / 2 < p / 2


def test_bad_inputs_name_the_parameter():
    with pytest.raises(ParameterError, match="p="):
        R.simulate_ridge(2.5, [0.5], [0.0])
    with pytest.raises(ParameterError, match="p="):
        R.simulate_ridge(2, [0.5], [0.0])
    with pytest.raises(ParameterError, match="gamma"):
        R.ridge_risk([0.5, -1.0])
    with pytest.raises(ParameterError, match="gamma"):
        R.ridge_risk([float("nan")])
    with pytest.raises(ParameterError, match="lam"):
        R.ridge_risk(0.5, -0.1)
    with pytest.raises(ParameterError, match="sigma2"):
        R.ridge_risk(0.5, 0.1, 1.0, -1.0)
    with pytest.raises(ParameterError, match="draws"):
        R.simulate_ridge(10, [0.5], [0.0], draws=1)
    with pytest.raises(ParameterError, match="n="):
        R.ridgeless_risk_finite(0, 10)
    with pytest.raises(ParameterError, match="sigma"):
        R.blr_mean_free_energy(np.ones((3, 2)), np.ones(2), 0.0, 1.0)
    with pytest.raises(ParameterError, match="N="):
        R.simulate_random_features(10, 20, [0])
    with pytest.raises(ParameterError, match="lam"):
        R.simulate_random_features(10, 20, [5], lam=0.0)
    for bad in ([1.0, -0.5, 2.0], [1.0, np.inf, 2.0], [1.0, 2.0]):
        with pytest.raises(ParameterError, match="eigs"):
            R.conditional_risk(np.array(bad), 10, 3, 0.1, 1.0, 1.0)
    X = np.random.default_rng(0).standard_normal((10, 3))
    with pytest.raises(ParameterError, match="nbeta"):
        R.blr_llc_exact(X, 0.0, 1.0)
    with pytest.raises(ParameterError, match="nbeta"):
        R.blr_llc_measured(X, np.ones(10), nbeta=-1.0, localization=1.0)
    with pytest.raises(ParameterError, match="localization"):
        R.blr_llc_measured(X, np.ones(10), nbeta=10.0, localization=-1.0)


@pytest.mark.slow
def test_relu_random_features_match_their_gaussian_equivalent():
    """Gaussian equivalence (Mei–Montanari §5): ReLU features vs μ₀ + μ₁ wᵀx + μ_* z, paired, |z| < 4."""
    out = R.simulate_random_features(60, 120, [30, 114, 126, 240], lam=1e-3, kinds=("relu", "gaussian_equivalent"),
                                     draws=12, n_test=1000, sigma2=0.25, seed=5)
    z = out["paired_diff_mean"] / out["paired_diff_se"]
    assert np.all(np.abs(z) < 4), z
