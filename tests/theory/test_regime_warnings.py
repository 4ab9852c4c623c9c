"""predict() says when it is outside the regime where it was measured to hold (issue 11)."""
import warnings

import numpy as np
import pytest

from deepeft.core.errors import AccuracyWarning
from deepeft.core.spec import MLPSpec
from deepeft.theory import critical_spec, predict
from deepeft.theory.predict import MEASURED_BREAKDOWN

X = np.random.default_rng(0).standard_normal((2, 8))


def _run(spec):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        obs = predict(spec, X)
    regime = [w for w in rec if issubclass(w.category, AccuracyWarning) and "regime" in str(w.message)]
    chaos = [w for w in rec if issubclass(w.category, AccuracyWarning) and "chaotic" in str(w.message)]
    raw = [w for w in rec if issubclass(w.category, RuntimeWarning)]
    return obs, regime, chaos, raw


def test_inside_the_measured_regime_is_quiet():
    obs, regime, chaos, raw = _run(critical_spec("tanh", depth=8, width=64, input_dim=8))  # ℓ/n = 7/64 < 0.15
    assert not regime and not chaos and not raw
    assert obs.meta["regime"]["trusted_until_layer"] == 8


def test_relu_beyond_measured_breakdown_warns_with_the_layer():
    obs, regime, _, _ = _run(critical_spec("relu", depth=8, width=32, input_dim=8))
    # Σ_{k=2..l} 1/32 > 0.09 first at l = 4 (3/32 = 0.094)
    assert len(regime) == 1 and "from layer 4" in str(regime[0].message)
    assert obs.meta["regime"]["trusted_until_layer"] == 3
    assert obs.meta["regime"]["breakdown_ratio"] == MEASURED_BREAKDOWN["scale-invariant"]


def test_critical_tanh_uses_its_own_measured_limit():
    obs, regime, _, _ = _run(critical_spec("tanh", depth=8, width=32, input_dim=8))
    # 0.15 · 32 = 4.8 → layer 6 (5/32 = 0.156) is the first beyond
    assert len(regime) == 1 and "from layer 6" in str(regime[0].message)


def test_width_one_chaotic_network_one_clear_message_no_raw_overflow():
    spec = MLPSpec.make("relu", depth=200, width=1, input_dim=8, C_W=10, C_b=0.1)
    obs, regime, chaos, raw = _run(spec)
    assert len(regime) == 1 and len(chaos) == 1 and not raw
    # K grows like (C_W/2)^ℓ = 5^ℓ: it passes 1e50 near ℓ = 50/log10(5) ≈ 72
    assert 60 <= obs.meta["regime"]["chaotic_from_layer"] <= 80


@pytest.mark.parametrize("width", [16, 64])
def test_infinite_order_never_warns_about_1_over_n(width):
    spec = critical_spec("relu", depth=12, width=width, input_dim=8)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        predict(spec, X, order="infinite")
    assert not [w for w in rec if "regime" in str(w.message)]
