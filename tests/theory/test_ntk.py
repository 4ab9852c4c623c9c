"""Frozen NTK and its finite-width statistics."""
import numpy as np
import pytest
from scipy.integrate import quad

from deepeft.core.spec import MLPSpec
from deepeft.theory import critical_spec, ntk_fluctuations, output_density, predict


def test_relu_ntk_closed_forms():
    """Scale-invariant class, C_b = 0, λ_b = 0: Θ = lθ and the polynomial A, B, D, F of PDLT reference §5.5."""
    L, K, A2, A4, nu, nup, lw = 30, 1.0, 0.5, 0.5, 5.0, 1.0, 1.0
    spec = MLPSpec.make("relu", L, 100, 1, C_W=2.0, lambda_W=lw, lambda_b=0.0)
    o = ntk_fluctuations(spec, np.full((1, 1), np.sqrt(0.5)))
    l = np.arange(1, L + 1)
    th = lw * A2 * K
    expect = {
        "Theta": l * th,
        "B": (A4 / A2**2) * th**2 * (l - 1) * l * (2 * l - 1) / 6,
        "F": (A4 / A2**2) * K * th * (l - 1) * l / 2,
        "D": (lw * nu * A2 * K**2 + nup * K * th) * (l - 1) * l / 2,
        "A": (lw**2 * nu * A2**2 * K**2 + 2 * lw * A2 * nup * K * th) * (l - 1) * l / 2
        + nup * th**2 * (l - 1) * l * (2 * l - 1) / 6 + lw * A2 * (lw * nu * A2 * K**2 + nup * K * th) * (l - 2) * (l - 1) * l / 3,
    }
    for k, v in expect.items():
        np.testing.assert_allclose(o[k][:, 0], v, rtol=1e-12, atol=1e-12, err_msg=k)
    np.testing.assert_allclose(o["Theta1"][:, 0], 0.0, atol=1e-12)
    # Var(Ĥ)/Θ² → (11/3) l/n at large l with only weights trained
    big = MLPSpec.make("relu", 2000, 10**6, 1, C_W=2.0, lambda_W=1.0, lambda_b=0.0)
    ob = ntk_fluctuations(big, np.full((1, 1), np.sqrt(0.5)))
    ratio = ob["ntk_var"][-1, 0] / ob["Theta"][-1, 0] ** 2 * 10**6 / 2000
    assert ratio == pytest.approx(11 / 3, rel=2e-3)


def test_tanh_theta1_matches_published_mc():
    # PDLT reference §5.4: tanh, C_W = 1, C_b = 0, λ_b = 0, λ_W = 1, K^(1) = 1; MC at n = 16, 32 agrees
    spec = MLPSpec.make("tanh", 10, 32, 1, C_W=1.0, lambda_W=1.0, lambda_b=0.0)
    o = ntk_fluctuations(spec, np.ones((1, 1)))
    assert o["Theta1"][5, 0] == pytest.approx(-0.2940, abs=1e-4)
    assert o["Theta1"][9, 0] == pytest.approx(-0.6948, abs=1e-4)


def test_ntk_mean_multi_input_consistent_with_single_input():
    spec = critical_spec("gelu", 6, 64, 3)
    x = np.array([[1.0, 0.2, -0.5], [0.3, 1.0, 0.4]])
    o = predict(spec, x)
    for a in range(2):
        s = ntk_fluctuations(spec, x[a:a + 1])
        np.testing.assert_allclose(o["Theta"][:, a, a], s["Theta"][:, 0], rtol=1e-12)
        np.testing.assert_allclose(o["V_diag"][:, a], s["V"][:, 0], rtol=1e-10, atol=1e-15)
        np.testing.assert_allclose(o["K1"][:, a, a], s["K1"][:, 0], rtol=1e-8, atol=1e-14)


def test_relu_ntk_arccos_two_inputs():
    # Θ' = λ_b + λ_W⟨σσ⟩ + C_W⟨σ'σ'⟩Θ with the arc-cosine closed forms (Jacot et al. 2018)
    spec = MLPSpec.make("relu", 3, 64, 2, C_W=2.0, C_b=0.0, lambda_W=1.0, lambda_b=0.0)
    x = np.array([[1.0, 0.0], [0.6, 0.8]])
    o = predict(spec, x, order="infinite")
    K1 = 2 * x @ x.T / 2
    T1 = x @ x.T / 2
    psi = np.arccos(np.clip(K1[0, 1] / np.sqrt(K1[0, 0] * K1[1, 1]), -1, 1))
    J = np.sqrt(K1[0, 0] * K1[1, 1]) / (2 * np.pi) * (np.sin(psi) + (np.pi - psi) * np.cos(psi))
    K2 = 2 * J
    T2 = J + 2 * (np.pi - psi) / (2 * np.pi) * T1[0, 1]
    assert o["K"][1, 0, 1] == pytest.approx(K2, rel=1e-13)
    assert o["Theta"][1, 0, 1] == pytest.approx(T2, rel=1e-13)


def test_output_density_moments():
    spec = critical_spec("tanh", 6, 32, 1, output_width=1)
    o = predict(spec, np.ones((1, 1)))
    G = o["kernel"][-1, 0, 0]
    n = spec.fan_in(6)
    p = lambda z: float(output_density(o, z))  # noqa: E731
    assert quad(p, -np.inf, np.inf)[0] == pytest.approx(1.0, abs=1e-10)
    assert quad(lambda z: z * z * p(z), -np.inf, np.inf)[0] == pytest.approx(G, rel=1e-9)
    m4 = quad(lambda z: z**4 * p(z), -np.inf, np.inf)[0]
    assert m4 == pytest.approx(3 * G**2 + 3 * o["V_diag"][-1, 0] / n, rel=1e-9)
