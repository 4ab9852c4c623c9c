"""Critical points, universality classes and large-depth asymptotics."""
import math

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.optimize import fsolve
from scipy.special import erf, expit

from deepeft.core.spec import MLPSpec
from deepeft.theory import (critical_spec, criticality, equivalence_learning_rates, large_depth_asymptotics,
                            optimal_aspect_ratio, phase_boundary, predict, residual_nu)


def test_scale_invariant_critical_points():
    for name, cw, nu in [("relu", 2.0, 5.0), ("linear", 1.0, 2.0), ("leaky_relu:0.1", 1.9801980198, 4.8823645)]:
        cp = criticality(name)
        assert cp.universality_class == "scale-invariant" and cp.exists
        assert cp.C_b == 0.0
        assert cp.C_W == pytest.approx(cw, abs=1e-9)
        assert cp.constants["nu"] == pytest.approx(nu, abs=1e-7)


@pytest.mark.parametrize("name,cw", [("tanh", 1.0), ("sin", 1.0), ("erf", math.pi / 4)])
def test_k0_class(name, cw):
    cp = criticality(name)
    assert cp.universality_class == "K*=0" and cp.C_b == 0.0
    assert cp.C_W == pytest.approx(cw, rel=1e-12)


def _gelu(z):
    return 0.5 * z * (1 + erf(z / math.sqrt(2)))


def _gelu_p(z):
    return 0.5 * (1 + erf(z / math.sqrt(2))) + z * math.exp(-z * z / 2) / math.sqrt(2 * math.pi)


def _silu(z):
    return z * expit(z)


def _silu_p(z):
    s = expit(z)
    return s * (1 + z * (1 - s))


def _E(f, K):
    return quad(lambda z: f(z) * math.exp(-z * z / (2 * K)) / math.sqrt(2 * math.pi * K), -np.inf, np.inf,
                epsabs=0, epsrel=1e-13, limit=400)[0]


@pytest.mark.parametrize("name,f,fp,guess", [("gelu", _gelu, _gelu_p, (3.5, 2.0, 0.2)),
                                             ("silu", _silu, _silu_p, (14.0, 2.0, 0.5))])
def test_half_stable_points_against_independent_root_finder(name, f, fp, guess):
    def eqs(v):
        K, cw, cb = v
        g = _E(lambda z: f(z) ** 2, K)
        chi_par = cw / (2 * K * K) * _E(lambda z: f(z) ** 2 * (z * z - K), K)
        chi_perp = cw * _E(lambda z: fp(z) ** 2, K)
        return [cb + cw * g - K, chi_par - 1, chi_perp - 1]

    K, cw, cb = fsolve(eqs, guess, xtol=1e-13)
    cp = criticality(name)
    assert cp.universality_class == "half-stable"
    assert cp.K_star == pytest.approx(K, rel=1e-6)
    assert cp.C_W == pytest.approx(cw, rel=1e-8)
    assert cp.C_b == pytest.approx(cb, rel=1e-6)


def test_published_half_stable_constants():
    g = criticality("gelu")
    assert g.K_star == pytest.approx((3 + math.sqrt(17)) / 2, abs=1e-7)
    assert g.C_W == pytest.approx(1.98305826, abs=1e-7) and g.C_b == pytest.approx(0.17292239, abs=1e-7)
    assert g.constants["stable_from"] == "above"
    s = criticality("silu")
    assert s.K_star == pytest.approx(14.3201736, abs=1e-5)
    assert s.C_W == pytest.approx(1.98800468, abs=1e-6) and s.C_b == pytest.approx(0.55514317, abs=1e-6)


@pytest.mark.parametrize("name", ["sigmoid", "softplus"])  # ELU is critical at K* = 0 (kink class, issue 11)
def test_no_criticality(name):
    cp = criticality(name)
    assert not cp.exists and cp.universality_class == "none"
    assert "cannot be tuned to criticality" in cp.message
    with pytest.raises(ValueError, match="critical point"):
        critical_spec(name, 3, 16, 4)


def test_sigmoid_reason_mentions_offset():
    assert "σ(0) = 0.5" in criticality("sigmoid").message


def test_tanh_kernel_power_law_with_log_correction():
    # Iterate the exact single-input recursion to l = 1000 and compare with 1/K ≈ 2l − (5/6) ln l + c
    spec = critical_spec("tanh", 1000, 8, 1)
    obs = predict(spec, np.ones((1, 1)), order="infinite")
    K = obs["K"][:, 0, 0]
    l = np.arange(1, 1001)
    asy = large_depth_asymptotics("tanh", l)
    assert asy["constants"]["log_coefficient"] == pytest.approx(-5 / 6, rel=1e-10)
    assert K[99] * 100 == pytest.approx(0.51207, abs=2e-5)   # PDLT reference §3.2 numbers
    assert K[999] * 1000 == pytest.approx(0.50167, abs=2e-5)
    c = 1 / K - asy["K"] ** -1  # the O(1) constant: must settle
    assert abs(c[999] - c[499]) < 5e-3


def test_vertex_and_K1_asymptotics_tanh():
    spec = critical_spec("tanh", 1000, 10**6, 1)
    obs = predict(spec, np.ones((1, 1)), order="1/n")
    n = 10**6
    vn = obs["V_norm"][:, 0] * n
    assert vn[999] / 1000 == pytest.approx(0.6657, abs=2e-3)   # → 2/3 · l
    assert obs["K1"][999, 0, 0] == pytest.approx(-1 / 6, abs=2e-3)


def test_relu_vertex_is_linear_in_depth():
    spec = critical_spec("relu", 12, 100, 3)
    obs = predict(spec, np.ones((1, 3)))
    np.testing.assert_allclose(obs["V_norm"][:, 0], 5 * np.arange(12) / 100, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(obs["K1"][:, 0, 0], 0, atol=1e-12)


def test_residual_nu_and_aspect_ratio():
    # no skip: the class constants; linear σ: the single-input closed form (1−ξ²)[(1−ξ²)ν + 4ξ²] is exact
    assert residual_nu("relu", 0.0) == pytest.approx(5.0)
    assert residual_nu("tanh", 0.0) == pytest.approx(2 / 3)
    for xi in (0.5, 0.8):
        assert residual_nu("linear", xi) == pytest.approx((1 - xi**2) * ((1 - xi**2) * 2 + 4 * xi**2), rel=1e-8)
    # ReLU: skip connections *raise* the growth of V/(nK²) (linear-response theory, MC-checked in test_residual.py)
    assert residual_nu("relu", 0.5) == pytest.approx(6.4963, abs=1e-3)
    assert optimal_aspect_ratio("relu") == pytest.approx(4 / 115)
    assert optimal_aspect_ratio("tanh") == pytest.approx(6 / 23)
    assert optimal_aspect_ratio("relu", output_width=10) == pytest.approx(0.0160, abs=1e-4)


def test_residual_chi_par_is_one_at_criticality():
    xi = 0.5
    spec = critical_spec("relu", 12, 1000, 4, residual=(xi, math.sqrt(1 - xi**2)))
    obs = predict(spec, np.ones((1, 4)))
    np.testing.assert_allclose(obs["chi_par"][1:-1, 0], 1.0, rtol=1e-12)
    np.testing.assert_allclose(obs["K"][:, 0, 0], obs["K"][0, 0, 0], rtol=1e-12)


def test_learning_rate_equivalence_principle():
    L = 400
    lb, lw = equivalence_learning_rates("relu", L, 1.0, 1.0)
    spec = MLPSpec.make("relu", L, 64, 2, C_W=2.0, C_b=0.0, lambda_b=lb, lambda_W=lw)
    th = predict(spec, np.ones((1, 2)) * math.sqrt(0.5), order="infinite")["Theta"][:, 0, 0]
    # Θ^(L) = λ̃_b + λ̃_W A₂ K with K = 2·0.5 = 1, A₂ = ½  ⇒  1.5 (and O(1), not O(L))
    assert th[-1] == pytest.approx(1.5, rel=1e-12)
    lb, lw = equivalence_learning_rates("tanh", L, 0.0, 1.0)
    spec = critical_spec("tanh", L, 64, 1, lambda_b=lb, lambda_W=lw)
    th = predict(spec, np.ones((1, 1)), order="infinite")["Theta"][:, 0, 0]
    assert th[-1] == pytest.approx(0.5, rel=0.05)  # λ̃_W σ₁²/(−a₁) = 1/2 at large L


def test_phase_boundary():
    np.testing.assert_allclose(phase_boundary("relu", [0.0, 0.3]), [2.0, 2.0], rtol=1e-6)
    pb = phase_boundary("tanh", [0.0, 0.1])
    assert pb[0] == pytest.approx(1.0, rel=1e-6)
    assert pb[1] > 1.0


def test_phase_boundary_curve_matches_pointwise_solver():
    from deepeft.theory import phase_boundary_curve
    cb, cw = phase_boundary_curve("tanh", 0.3)
    assert cb[0] == 0.0 and cw[0] == pytest.approx(1.0)
    for c in (0.05, 0.2):
        assert np.interp(c, cb, cw) == pytest.approx(phase_boundary("tanh", [c])[0], rel=1e-3)
    cb, cw = phase_boundary_curve("relu", 0.5)
    np.testing.assert_allclose(cw, 2.0)
