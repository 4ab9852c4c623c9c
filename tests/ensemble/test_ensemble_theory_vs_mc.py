"""Theory (infinite width + 1/n) vs Monte Carlo at criticality, L/n ≤ 0.1: kernel, V and Θ mean
within 4 estimated standard errors for every entry and layer (pdlt §4, §5.2)."""
import numpy as np
import pytest

from deepeft.ensemble import compare, measure
from deepeft.theory import critical_spec, predict


@pytest.mark.parametrize("act", ["relu", "tanh", "gelu"])
def test_critical_theory_vs_mc(act, unit_inputs):
    L, n = 4, 64  # L/n = 0.0625
    spec = critical_spec(act, L, n, 8)
    x = unit_inputs(2, 8)
    th = predict(spec, x)
    ms = measure(spec, x, ensemble=1600, seed=1, quantities=("kernel", "V", "V_norm", "Theta"))
    cmp = compare(th, ms, ("kernel", "V", "V_norm", "Theta"), entries="all")
    worst = {q: cmp.max_abs_z(q) for q in ("kernel", "V", "V_norm", "Theta")}
    assert all(z <= 4.0 for z in worst.values()), (worst, cmp.to_text())
    # the test has power: the signal V/(nK²) at the last layer is many SE away from zero
    assert ms["V_norm"][-1, 0] > 10 * ms.errors["V_norm"][-1, 0]
    assert all(v is None for v in cmp.breakdown.values())


def test_breakdown_is_flagged_not_raised(unit_inputs):
    # narrow ReLU, L/n up to 0.75: exact V_norm = (1+5/n)^(l-1) − 1 outgrows the 1/n line 5(l−1)/n
    spec = critical_spec("relu", 6, 8, 8)
    x = unit_inputs(1, 8)
    th = predict(spec, x)
    ms = measure(spec, x, ensemble=20000, seed=0, quantities=("kernel", "V_norm"))
    cmp = compare(th, ms, ("kernel", "V_norm"))
    assert cmp.breakdown["V_norm"] is not None and cmp.breakdown["V_norm"] >= 3  # layer 2 is exact at O(1/n)
    assert "beyond 1/n" in cmp.to_text()
    assert cmp.breakdown["kernel"] is None  # the ReLU kernel has no 1/n correction at any width
