"""The large-N infinite-width path agrees with the reference recursion."""
import numpy as np
import pytest

from deepeft.core.errors import ParameterError
from deepeft.core.spec import MLPSpec
from deepeft.theory import infinite_kernels, predict


@pytest.mark.parametrize("act", ["relu", "leaky_relu:0.2", "erf", "tanh", "gelu", "softplus"])
def test_matches_recursion_square_and_cross(act):
    rng = np.random.default_rng(1)
    x, x2 = rng.normal(size=(10, 6)), rng.normal(size=(4, 6))
    spec = MLPSpec.make(act, 7, 64, 6, C_W=1.6, C_b=0.1, parameterization="ntk")
    k = infinite_kernels(spec, x)
    o = predict(spec, np.vstack([x, x2]), order="infinite")
    np.testing.assert_allclose(k.nngp, o["K"][-1][:10, :10], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(k.ntk, o["Theta"][-1][:10, :10], rtol=1e-9, atol=1e-12)
    kc = infinite_kernels(spec, x, x2, get="ntk")
    assert kc.nngp is None
    np.testing.assert_allclose(kc.ntk, o["Theta"][-1][:10, 10:], rtol=1e-9, atol=1e-12)


def test_duplicate_inputs_converge():
    x = np.array([[1.0, 0.5], [1.0, 0.5], [0.2, -1.0]])
    spec = MLPSpec.make("tanh", 4, 64, 2, C_W=1.3, C_b=0.0)
    k = infinite_kernels(spec, x)
    o = predict(spec, x, order="infinite")
    np.testing.assert_allclose(k.nngp, o["K"][-1], rtol=1e-8)
    assert k.nngp[0, 1] == pytest.approx(k.nngp[0, 0], rel=1e-8)


def test_bad_arguments():
    spec = MLPSpec.make("relu", 3, 8, 2, C_W=2.0)
    with pytest.raises(ParameterError, match="get"):
        infinite_kernels(spec, np.ones((2, 2)), get="foo")
    with pytest.raises(ParameterError, match="x2"):
        infinite_kernels(spec, np.ones((2, 2)), np.ones((2, 3)))
