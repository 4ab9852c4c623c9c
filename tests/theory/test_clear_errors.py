"""Bad input gets an error naming the parameter (issue 11's raw tracebacks)."""
import time

import numpy as np
import pytest
import torch

from deepeft.core.errors import ParameterError
from deepeft.core.spec import MLPSpec
from deepeft.theory import critical_spec


@pytest.mark.parametrize("width", [3.7, "wide", None, {"a": 1}])
def test_non_integer_width(width):
    with pytest.raises(ParameterError, match="width"):
        MLPSpec.make("relu", depth=3, width=width, input_dim=4, C_W=2.0)


def test_activation_nan_away_from_zero_is_blamed_not_C_W():
    f = lambda z: torch.where(z.abs() > 5, torch.full_like(z, float("nan")), torch.tanh(z))  # noqa: E731
    with pytest.raises(ParameterError, match=r"activation.*finite on \[-20, 20\].*z = -5\.0"):
        MLPSpec.make(f, depth=3, width=16, input_dim=4, C_W=1.0)


def test_very_deep_spec_short_error_and_linear_build():
    spec = critical_spec("relu", depth=10_000, width=64, input_dim=4)  # quadratic in depth before (~75 s)
    assert spec.depth == 10_000
    with pytest.raises(ParameterError) as err:
        MLPSpec.make("relu", depth=10_000, width=64, input_dim=4, C_W=[2.0] * 9_999)  # one entry short
    assert len(str(err.value)) < 600 and "9999 entries" in str(err.value)
