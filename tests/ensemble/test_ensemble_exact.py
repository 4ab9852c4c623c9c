"""MC against results that are exact at finite width (no 1/n truncation): deep linear networks,
ReLU single-input moments, and layers 1–2 of any network (pdlt §4.1, §4.4, §9)."""
import numpy as np
import pytest

from deepeft.core.spec import MLPSpec
from deepeft.ensemble import measure
from deepeft.theory import exact_four_point

Z = 4.0  # tolerance in estimated standard errors (never loosened)


def _check(measured, err, exact, z=Z):
    measured, err, exact = map(np.asarray, (measured, err, exact))
    ok = np.abs(measured - exact) <= z * err + 1e-10 * np.abs(exact).max()
    assert ok.all(), f"max |z| = {np.max(np.abs(measured - exact) / np.maximum(err, 1e-300)):.2f}\n{measured}\n{exact}\n{err}"


def test_deep_linear_single_input_exact_kurtosis(unit_inputs):
    # E[z⁴]/E[z²]² = 3 Π_{l'<l}(1 + 2/n_{l'})  (pdlt §9), unequal widths
    widths = [8, 12, 6, 10]
    spec = MLPSpec.make("linear", 5, widths, 4, C_W=1.0, C_b=0.0)
    x = unit_inputs(1, 4)
    obs = measure(spec, x, ensemble=3000, seed=11, quantities=("kernel", "V_norm", "kurtosis"))
    exact_vn = np.array([np.prod([1 + 2 / n for n in widths[: l]]) - 1 for l in range(5)])
    _check(obs["V_norm"][:, 0], obs.errors["V_norm"][:, 0], exact_vn)
    _check(obs["kurtosis"][:, 0], obs.errors["kurtosis"][:, 0], 3 * exact_vn)
    _check(obs["kernel"][:, 0, 0], obs.errors["kernel"][:, 0, 0], np.ones(5))


def test_deep_linear_multi_input_with_bias_exact_four_point(unit_inputs):
    spec = MLPSpec.make("linear", 4, 10, 5, C_W=[1.0, 0.9, 1.1, 1.0], C_b=[0.1, 0.2, 0.0, 0.3], output_width=2)
    x = unit_inputs(3, 5, seed=3)
    obs = measure(spec, x, ensemble=3000, seed=2, quantities=("kernel", "V"))
    ex = exact_four_point(spec, x)
    _check(obs["kernel"], obs.errors["kernel"], ex["kernel"])
    _check(obs["V"], obs.errors["V"], ex["V"])


def test_deep_linear_residual_direct_estimator(unit_inputs):
    # residual layers use the direct cross-neuron estimator; for a linear residual net
    # z' = ξz + γ(b + Wz) the kernel is exact: K' = ξ²K + γ²(C_b + C_W K)
    xi, gamma = 0.6, 0.8
    spec = MLPSpec.make("linear", 4, 16, 4, C_W=1.0, C_b=0.05, residual=(xi, gamma))
    x = unit_inputs(2, 4)
    obs = measure(spec, x, ensemble=2000, seed=4, quantities=("kernel", "V_pairs"))
    K = 0.05 + x @ x.T / 4
    Ks = [K]
    for l in range(2, 5):
        K = (xi**2 * K + gamma**2 * (0.05 + K)) if l < 4 else 0.05 + K
        Ks.append(K)
    _check(obs["kernel"], obs.errors["kernel"], np.array(Ks))
    assert np.all(np.isfinite(obs.errors["V_pairs"][1:]))


def test_relu_exact_kurtosis_any_width(unit_inputs):
    # scale-invariant, C_b = 0, one input: E[z⁴]/E[z²]² = 3 Π (1 + 5/n_{l'})  (pdlt §4.4)
    n, L = 12, 6
    spec = MLPSpec.make("relu", L, n, 6, C_W=2.0, C_b=0.0)
    x = unit_inputs(1, 6)
    obs = measure(spec, x, ensemble=4000, seed=0, quantities=("kurtosis", "kernel"))
    exact = np.array([3 * (1 + 5 / n) ** (l - 1) - 3 for l in range(1, L + 1)])
    _check(obs["kurtosis"][:, 0], obs.errors["kurtosis"][:, 0], exact)
    _check(obs["kernel"][:, 0, 0], obs.errors["kernel"][:, 0, 0], 2.0 * np.ones(L))


def _gauss_expect(f, K, deg=120):
    t, w = np.polynomial.hermite_e.hermegauss(deg)
    return float(np.sum(w * f(np.sqrt(K) * t)) / np.sqrt(2 * np.pi))


def test_tanh_first_two_layers_exact(unit_inputs):
    # layer 1 exactly Gaussian (V = 0); layer 2: K exact and V^(2) = C_W²(⟨σ⁴⟩ − ⟨σ²⟩²)_{K^(1)} exact
    cw, cb, n = 1.5, 0.2, 8
    spec = MLPSpec.make("tanh", 3, n, 4, C_W=cw, C_b=cb)
    x = unit_inputs(1, 4)
    obs = measure(spec, x, ensemble=4000, seed=9, quantities=("kernel", "V"))
    K1 = cb + cw
    assert obs["kernel"][0, 0, 0] == pytest.approx(K1, rel=1e-12)
    assert abs(obs["V"][0, 0, 0, 0, 0]) < 1e-9 and obs.errors["V"][0].max() < 1e-9
    K2 = cb + cw * _gauss_expect(lambda z: np.tanh(z) ** 2, K1)
    V2 = cw**2 * (_gauss_expect(lambda z: np.tanh(z) ** 4, K1) - _gauss_expect(lambda z: np.tanh(z) ** 2, K1) ** 2)
    _check(obs["kernel"][1, 0, 0], obs.errors["kernel"][1, 0, 0], K2)
    _check(obs["V"][1, 0, 0, 0, 0], obs.errors["V"][1, 0, 0, 0, 0], V2)


def test_user_callable_activation_and_float32(unit_inputs):
    spec = MLPSpec.make(lambda z: z * 0.5 + 0.5 * z, 3, 10, 4, C_W=1.0, C_b=0.0)  # linear in disguise
    x = unit_inputs(1, 4)
    obs = measure(spec, x, ensemble=2000, seed=1, dtype="float32", quantities=("V_norm",))
    exact = np.array([0.0, 2 / 10, (1 + 2 / 10) ** 2 - 1])
    _check(obs["V_norm"][:, 0], obs.errors["V_norm"][:, 0] + 1e-6, exact)
    assert obs.meta["dtype"] == "float32"
