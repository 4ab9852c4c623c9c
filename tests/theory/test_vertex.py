"""Four-point vertex V and 1/n kernel K1: exact deep-linear results and Monte-Carlo checks."""
import numpy as np
import pytest

from _mc import extrapolate, sample_multi_input, sample_single_input, vnorm_estimate
from deepeft.core.spec import MLPSpec
from deepeft.theory import critical_spec, exact_four_point, exact_moment, predict

X3 = np.array([[1.0, 0.5, -0.3], [0.2, -1.0, 0.8], [-0.7, 0.1, 0.4]])


def test_vertex_tensor_symmetries_and_diagonal_consistency():
    for spec in (MLPSpec.make("tanh", 5, 32, 3, C_W=1.2, C_b=0.1),
                 MLPSpec(3, (32, 16, 48, 32), "leaky_relu:0.2", 1.9, 0.05)):
        o = predict(spec, X3, vertex="full")
        V = o["V"]
        np.testing.assert_allclose(V, np.transpose(V, (0, 2, 1, 3, 4)), atol=1e-12)
        np.testing.assert_allclose(V, np.transpose(V, (0, 3, 4, 1, 2)), atol=1e-12)
        idx = np.arange(3)
        np.testing.assert_allclose(V[:, idx, idx, idx, idx], o["V_diag"], rtol=1e-10, atol=1e-14)
        d = predict(spec, X3, vertex="diagonal")
        np.testing.assert_allclose(np.diagonal(o["K1"], axis1=1, axis2=2), np.diagonal(d["K1"], axis1=1, axis2=2), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("cb", [0.0, 0.3])
def test_deep_linear_vertex_recursion_is_exact_leading_order(cb):
    L = 6
    diffs = []
    for n in (400, 800):
        spec = MLPSpec.make("linear", L, n, 3, C_W=1.1, C_b=cb)
        ex = exact_four_point(spec, X3)
        th = predict(spec, X3, vertex="full")
        # layer 2 is exact at any width; K1 vanishes and the kernel is exact
        np.testing.assert_allclose(th["V"][1], ex["V"][1], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(th["K1"], 0.0, atol=1e-10)
        np.testing.assert_allclose(th["kernel"], ex["kernel"], rtol=1e-12)
        diffs.append(np.abs(ex["V"] - th["V"]).max())
    # the finite-width remainder is O(1/n): doubling n halves it
    assert diffs[0] / diffs[1] == pytest.approx(2.0, rel=0.01)


def test_deep_linear_single_input_moments():
    spec = MLPSpec.make("linear", 7, 12, 2, C_W=1.0)
    x = np.array([[1.0, 1.0]])
    m1, m2, m3 = (exact_moment(spec, x, m) for m in (1, 2, 3))
    n = 12
    l = np.arange(1, 8)
    np.testing.assert_allclose(m2 / m1**2, 3 * (1 + 2 / n) ** (l - 1), rtol=1e-12)
    np.testing.assert_allclose(m3 / m1**3, 15 * ((1 + 2 / n) * (1 + 4 / n)) ** (l - 1), rtol=1e-12)
    np.testing.assert_allclose(exact_four_point(spec, x)["V_norm"][:, 0], (1 + 2 / n) ** (l - 1) - 1, rtol=1e-12)


def test_relu_mc_matches_exact_finite_width_kurtosis():
    # sanity of the MC estimator: ReLU at criticality is exact, E[z⁴]/E[z²]² = 3∏(1 + 5/n)
    n = 32
    spec = critical_spec("relu", 5, n, 4)
    zs = sample_single_input(spec, np.ones(4), 60000, seed=3)
    for l in (2, 3, 4):
        est, se = vnorm_estimate(zs[l - 1])
        exact = (1 + 5 / n) ** (l - 1) - 1
        assert abs(est - exact) < 4 * se, (l, est, exact, se)


@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_vertex_monte_carlo_within_4_sigma(act):
    """n·V/(nK²) measured at n = 50, 100, 200 (L/n ≤ 0.1), extrapolated in 1/n, vs the 1/n theory."""
    ns, ys, ses = [50, 100, 200], [], []
    for n in ns:
        spec = critical_spec(act, 5, n, 4)
        zs = sample_single_input(spec, np.ones(4), 100000, seed=1)
        est, se = vnorm_estimate(zs[3])
        ys.append(n * est)
        ses.append(n * se)
    a, sa = extrapolate(ns, ys, ses)
    theory = predict(critical_spec(act, 5, 100, 4), np.ones((1, 4)))["V_norm"][3, 0] * 100
    assert abs(a - theory) < 4 * sa, (a, sa, theory)
    assert sa < 0.05 * theory  # the check has teeth


def test_offdiagonal_K1_is_needed_to_match_mc():
    spec = MLPSpec.make("relu", 4, 16, 3, C_W=2.0, output_width=16)
    x = X3[:2]
    th = predict(spec, x, vertex="full")
    zs = sample_multi_input(spec, x, 100000, seed=5)
    for l in (3, 4):
        k = (zs[l - 1][:, :, 0] * zs[l - 1][:, :, 1]).mean(1)
        mc, se = k.mean(), k.std() / np.sqrt(len(k))
        assert abs(mc - th["kernel"][l - 1, 0, 1]) < 4 * se
        assert abs(mc - th["K"][l - 1, 0, 1]) > 8 * se  # the infinite-width kernel alone is excluded
