"""Gaussian integrals: quadrature vs closed forms, Price's theorem, heat-equation identities."""
import math

import numpy as np
import pytest
from scipy.integrate import quad

from deepeft.core import gaussian as gi
from deepeft.core.activations import get_activation

RELU, ERF, TANH = get_activation("relu"), get_activation("erf"), get_activation("tanh")
CASES = [(1.0, 0.3, 2.0), (0.7, -0.5, 1.1), (2.5, 2.4, 2.5), (0.2, 0.0, 3.0)]


def arccos_kernel(Kaa, Kab, Kbb):
    """Cho & Saul (2009) degree-1 arc-cosine kernel, written independently of the library."""
    t = math.acos(Kab / math.sqrt(Kaa * Kbb))
    return math.sqrt(Kaa * Kbb) / (2 * math.pi) * (math.sin(t) + (math.pi - t) * math.cos(t))


def arcsine_kernel(Kaa, Kab, Kbb):
    """Williams (1997): E[erf(z_a) erf(z_b)]."""
    return 2 / math.pi * math.asin(2 * Kab / math.sqrt((1 + 2 * Kaa) * (1 + 2 * Kbb)))


@pytest.mark.parametrize("K", CASES)
def test_relu_closed_form_matches_arccos_and_angular_quadrature(K):
    Kaa, Kab, Kbb = K
    closed = gi.pair(RELU, Kaa, Kab, Kbb, 0, 0)
    assert closed == pytest.approx(arccos_kernel(*K), rel=1e-12, abs=1e-14)
    ang = gi.product_moment(RELU, np.array([[Kaa, Kab], [Kab, Kbb]]), (1, 1))
    assert ang == pytest.approx(closed, rel=1e-10, abs=1e-12)
    # ⟨σ'σ'⟩ = (π − ψ)/2π
    assert gi.pair(RELU, Kaa, Kab, Kbb, 1, 1) == pytest.approx((math.pi - math.acos(Kab / math.sqrt(Kaa * Kbb))) / (2 * math.pi), rel=1e-12)


@pytest.mark.parametrize("K", CASES)
def test_erf_quadrature_matches_arcsine(K):
    assert gi.pair(ERF, *K, 0, 0) == pytest.approx(arcsine_kernel(*K), rel=1e-12)
    q = gi.pair_quad(ERF, *K, 0, 0)
    assert q == pytest.approx(arcsine_kernel(*K), rel=1e-10, abs=1e-12)
    q11 = gi.pair_quad(ERF, *K, 1, 1)
    assert q11 == pytest.approx(gi.pair(ERF, *K, 1, 1), rel=1e-10)


@pytest.mark.parametrize("K", [1e-3, 0.3, 1.0, 7.0, 200.0])
def test_one_variable_quadrature_vs_closed_forms(K):
    # ReLU through the quadrature path (panels split at the kink) vs the closed form
    for p, q in [(2, 0), (4, 0), (0, 2), (2, 2)]:
        assert gi._single_quad(RELU, np.array([K]), p, q, 0)[0] == pytest.approx(gi.single(RELU, K, p, q), rel=1e-10)
    assert gi._single_quad(ERF, np.array([K]), 2, 0, 0)[0] == pytest.approx(gi.single(ERF, K, 2), rel=1e-10)
    assert gi._single_quad(ERF, np.array([K]), 0, 2, 0)[0] == pytest.approx(gi.single(ERF, K, 0, 2), rel=1e-10)


@pytest.mark.parametrize("name", ["tanh", "gelu", "silu", "softplus", "sigmoid", "sin"])
def test_smooth_quadrature_accuracy_vs_adaptive(name):
    act = get_activation(name)
    for K in (0.05, 1.0, 9.0):
        f = lambda z: float(act(np.array(z))) ** 2 * math.exp(-z * z / (2 * K)) / math.sqrt(2 * math.pi * K)  # noqa: E731
        ref = quad(f, -np.inf, np.inf, epsabs=0, epsrel=1e-13, limit=400)[0]
        assert gi.single(act, K, 2) == pytest.approx(ref, rel=1e-8)


def test_heat_equation_identities():
    # d⟨f⟩/dK by Hermite weights vs central finite differences of ⟨f⟩ (tanh², smooth)
    for K in (0.3, 1.0, 4.0):
        h = 1e-4 * K
        fd = (gi.single(TANH, K + h, 2) - gi.single(TANH, K - h, 2)) / (2 * h)
        assert gi.single(TANH, K, 2, dK=1) == pytest.approx(fd, rel=1e-7)
        fd2 = (gi.single(TANH, K + h, 2) - 2 * gi.single(TANH, K, 2) + gi.single(TANH, K - h, 2)) / h**2
        assert gi.single(TANH, K, 2, dK=2) == pytest.approx(fd2, rel=1e-4)
        # ⟨σσ''⟩ + ⟨σ'²⟩ = ½⟨(σ²)''⟩ = d⟨σ²⟩/dK, with tanh' = 1 − t², tanh'' = −2t(1 − t²)
        def f(z):
            t = math.tanh(z)
            return (-2 * t * t * (1 - t * t) + (1 - t * t) ** 2) * math.exp(-z * z / (2 * K)) / math.sqrt(2 * math.pi * K)
        lhs = quad(f, -np.inf, np.inf, epsabs=0, epsrel=1e-13, limit=400)[0]
        assert lhs == pytest.approx(gi.single(TANH, K, 2, dK=1), rel=1e-9)


def _price_fd(act, K, i, j, h=1e-5):
    """Derivative moments from Price's theorem by finite differences of the closed-form ⟨σσ⟩."""
    Kaa, Kab, Kbb = K
    G = lambda a, b, c: gi.pair(act, a, b, c, 0, 0)  # noqa: E731
    if (i, j) == (2, 0):
        return 2 * (G(Kaa + h, Kab, Kbb) - G(Kaa - h, Kab, Kbb)) / (2 * h)
    if (i, j) == (1, 1):
        return (G(Kaa, Kab + h, Kbb) - G(Kaa, Kab - h, Kbb)) / (2 * h)
    if (i, j) == (2, 2):
        return (G(Kaa, Kab + h, Kbb) - 2 * G(Kaa, Kab, Kbb) + G(Kaa, Kab - h, Kbb)) / h**2
    if (i, j) == (4, 0):
        return 4 * (G(Kaa + h, Kab, Kbb) - 2 * G(Kaa, Kab, Kbb) + G(Kaa - h, Kab, Kbb)) / h**2
    if (i, j) == (3, 1):
        return 2 * (G(Kaa + h, Kab + h, Kbb) - G(Kaa + h, Kab - h, Kbb) - G(Kaa - h, Kab + h, Kbb) + G(Kaa - h, Kab - h, Kbb)) / (4 * h * h)
    raise ValueError


@pytest.mark.parametrize("name", ["relu", "leaky_relu:0.2", "abs", "tanh"])
@pytest.mark.parametrize("ij", [(2, 0), (1, 1), (2, 2), (3, 1), (4, 0)])
def test_derivative_moments_obey_prices_theorem(name, ij):
    act = get_activation(name)
    K = (1.2, 0.4, 0.9)
    h = 1e-3 if ij in ((2, 2), (4, 0), (3, 1)) else 1e-5
    assert gi.pair(act, *K, *ij) == pytest.approx(_price_fd(act, K, *ij, h=h), rel=2e-5, abs=1e-8)
