"""MLPSpec as a builder of the layer list; replace() re-derives the λ the user did not give."""
import numpy as np
import pytest

from deepeft.nets import spec_layers

from deepeft.core.errors import ParameterError
from deepeft.core.spec import MLPSpec
from deepeft.nets import Act, Dense, Residual, Serial
from deepeft.theory.recursion import layer_kernels, propagate

X = np.random.default_rng(3).normal(size=(3, 4))


def test_layers_of_a_residual_spec():
    spec = MLPSpec.make("tanh", 4, 6, 4, C_W=1.1, C_b=0.2, residual=(0.7, 0.5))
    layers = spec_layers(spec)
    assert isinstance(layers[0], Dense) and isinstance(layers[-1], Serial)
    assert [isinstance(b, Residual) for b in layers] == [False, True, True, False]
    assert isinstance(layers[1].branch.layers[0], Act) and layers[1].dense.n_out == 6


@pytest.mark.parametrize("spec", [
    MLPSpec.make("tanh", 4, [5, 6, 7], 4, C_W=[1.1, 1.3, 0.9, 1.0], C_b=0.2, lambda_W=[1.0, 0.5, 2.0, 1.0]),
    MLPSpec.make("relu", 4, 6, 4, C_W=1.5, C_b=0.1, residual=(0.8, 0.6), parameterization="standard"),
])
def test_layer_kernels_equal_propagate(spec):
    rec = propagate(spec, X, order="infinite")
    for l, (K, Th) in enumerate(layer_kernels(spec_layers(spec), X)):
        np.testing.assert_allclose(K, rec.K[l], rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(Th, rec.Theta[l], rtol=1e-13, atol=1e-15)


def test_replace_rederives_default_rates():
    std = MLPSpec.make("relu", 3, 8, 2, C_W=2.0, parameterization="standard")
    wide = std.replace(widths=(16, 16))
    assert wide.lambda_W == (2.0, 16.0, 16.0) and wide.lambda_b == (1.0, 1.0, 1.0)
    given = MLPSpec.make("relu", 3, 8, 2, C_W=2.0, parameterization="standard", lambda_W=0.5)
    assert given.replace(widths=(16, 16)).lambda_W == (0.5, 0.5, 0.5)
    # a spec read back from its dict keeps the distinction
    back = MLPSpec.from_dict(std.to_dict())
    assert back.to_dict() == std.to_dict() and back.replace(widths=(4, 4)).lambda_W == (2.0, 4.0, 4.0)
    assert MLPSpec.from_dict(given.to_dict()).replace(widths=(4, 4)).lambda_W == (0.5, 0.5, 0.5)
    with pytest.raises(ParameterError, match="changes"):
        std.replace(depth=3)
