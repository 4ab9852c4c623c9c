"""Bad input gets a clear error naming the parameter and the allowed range."""
import math
import warnings

import numpy as np
import pytest
import torch

from deepeft.cli import main
from deepeft.core import gaussian as gi
from deepeft.core.activations import custom_activation, get_activation
from deepeft.core.errors import AccuracyWarning, ParameterError
from deepeft.core.spec import MLPSpec
from deepeft.theory import criticality, predict


@pytest.mark.parametrize("kwargs,match", [
    (dict(activation="foo"), "activation='foo'.*allowed one of"),
    (dict(depth=0), "depth=0.*>= 1"),
    (dict(width=0), "width=0.*>= 1"),
    (dict(C_W=0.0), "C_W=0.0.*> 0"),
    (dict(C_W=-1.0), "C_W=-1.0.*> 0"),
    (dict(C_b=-0.1), "C_b=-0.1.*>= 0"),
    (dict(C_W=float("nan")), "C_W=nan.*finite"),
    (dict(C_b=float("inf")), "C_b=inf.*finite"),
    (dict(parameterization="mup"), "parameterization='mup'"),
    (dict(C_W=1.0, W_std=1.0), "either C_W or W_std"),
    (dict(residual=(0.5,)), "residual"),
])
def test_spec_validation(kwargs, match):
    base = dict(activation="relu", depth=3, width=8, input_dim=2, C_W=2.0)
    base.update(kwargs)
    if "W_std" in kwargs:
        base["C_W"] = kwargs["C_W"]
    with pytest.raises(ParameterError, match=match):
        MLPSpec.make(base.pop("activation"), base.pop("depth"), base.pop("width"), base.pop("input_dim"), **base)


def test_w_std_maps_to_c_w():
    s = MLPSpec.make("relu", 3, 8, 2, W_std=1.5, b_std=0.1)
    assert s.C_W == (2.25,) * 3 and s.C_b[0] == pytest.approx(0.01)


def test_unequal_widths_and_per_layer_variances():
    s = MLPSpec("tanh", (10, 20, 5), "tanh", C_W=(1.0, 1.5, 1.2, 1.0), C_b=(0.0, 0.1, 0.0, 0.2)) if False else \
        MLPSpec(3, (10, 20, 5), "tanh", (1.0, 1.5, 1.2, 1.0), (0.0, 0.1, 0.0, 0.2))
    o = predict(s, np.ones((2, 3)) * [[1], [0.5]])
    assert o["K"].shape == (4, 2, 2) and np.all(np.isfinite(o["V"]))
    with pytest.raises(ParameterError, match=r"C_W.*list of 4"):
        MLPSpec(3, (10, 20, 5), "tanh", (1.0, 1.5), 0.0)


@pytest.mark.parametrize("x,match", [
    (np.array([[np.nan, 1.0]]), "finite values only"),
    (np.array([[1.0, np.inf]]), "finite values only"),
    (np.ones((2, 3)), "input_dim=2"),
    (np.ones((2, 2, 2)), "shape"),
    ("abc", "array"),
])
def test_bad_inputs(x, match):
    spec = MLPSpec.make("relu", 3, 8, 2, C_W=2.0)
    with pytest.raises(ParameterError, match=match):
        predict(spec, x)


def test_non_callable_and_bad_callables():
    with pytest.raises(ParameterError, match="activation"):
        get_activation(42)
    with pytest.raises(ParameterError, match="accepts a torch tensor"):
        custom_activation(lambda z: 1 / 0)
    with pytest.raises(ParameterError, match="shape"):
        custom_activation(lambda z: z.sum())


def test_user_callable_activation_matches_builtin():
    mine = custom_activation(lambda z: torch.tanh(z), name="mytanh")
    spec_a = MLPSpec.make(mine, 4, 32, 2, C_W=1.0)
    spec_b = MLPSpec.make("tanh", 4, 32, 2, C_W=1.0)
    x = np.array([[1.0, 0.3], [0.2, -1.0]])
    np.testing.assert_allclose(predict(spec_a, x)["V"], predict(spec_b, x)["V"], rtol=1e-12)
    assert criticality(mine).C_W == pytest.approx(1.0)


def test_non_psd_kernel_is_rejected():
    with pytest.raises(ParameterError, match="positive semi-definite"):
        gi.product_moment(get_activation("tanh"), np.array([[1.0, 2.0, 0], [2.0, 1.0, 0], [0, 0, 1.0]]), (1, 1, 2))


def test_nonconvergent_quadrature_warns_with_accuracy():
    # a wildly oscillating user activation: quadrature cannot converge at the default order
    act = custom_activation(lambda z: torch.sin(40 * z), name="sin40")
    with pytest.warns(AccuracyWarning, match="reached relative accuracy"):
        gi.single(act, np.array([9.0]), 2)


def test_chaotic_overflow_is_reported():
    spec = MLPSpec.make("relu", 2000, 8, 2, C_W=3.0)
    with pytest.raises(ParameterError, match="overflowed"):
        predict(spec, np.ones((1, 2)), order="infinite")


def test_cli_errors_are_clean(capsys):
    assert main(["theory", "kernel", "-a", "relu", "--depth", "0"]) == 2
    assert "depth=0" in capsys.readouterr().err
    assert main(["theory", "kernel", "-a", "relu", "--C-W", "-1"]) == 2
    assert main(["theory", "criticality", "-a", "nope"]) == 2


def test_cli_json_outputs(capsys):
    import json
    assert main(["theory", "criticality", "-a", "tanh", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["C_W"] == 1.0 and d["universality_class"] == "K*=0"
    assert main(["theory", "kernel", "-a", "tanh", "--depth", "5", "--width", "64", "--n-inputs", "2", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert np.array(d["values"]["V"]).shape == (5, 2, 2, 2, 2)
    assert main(["theory", "aspect-ratio", "-a", "relu", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["optimal_aspect_ratio"] == pytest.approx(4 / 115)


def test_duplicate_inputs_are_handled_and_near_duplicates_rejected():
    from deepeft.theory import critical_spec
    spec = critical_spec("relu", 4, 32, 2)
    x = np.array([[1.0, 0.5], [1.0, 0.5], [0.3, -1.0]])
    o = predict(spec, x)
    ref = predict(spec, x[[0, 2]])
    for k in ("kernel", "V", "K1", "Theta"):
        assert np.all(np.isfinite(o[k]))
    np.testing.assert_allclose(o["kernel"][:, 1, 2], ref["kernel"][:, 0, 1], rtol=1e-12)
    np.testing.assert_allclose(o["V"][:, 0, 1, 0, 2], ref["V"][:, 0, 0, 0, 1], rtol=1e-12)
    np.testing.assert_allclose(o["kernel"][:, 0, 1], o["kernel"][:, 0, 0], rtol=1e-12)
    with pytest.raises(ParameterError, match="clearly distinct"):
        predict(spec, np.array([[1.0, 0.5], [1.0, 0.5 + 1e-9]]))
