"""Issue 11 item 7: activations without a Taylor expansion at 0 (ELU, SELU, CELU, user callables with
a kink).  ELU at C_b = 0, C_W = 1 is critical at K* = 0 with K^(l) → 4/(c² l²), c = √(2/π) (so K·l² → 2π),
χ_∥ ≈ 1 − 3/l, χ_⊥ ≈ 1 − 2/l; before, autograd took one side of the kink and ELU was reported
'cannot be tuned to criticality'.  The decay constant is checked against the exact layer recursion
K ← C_W⟨σ²⟩_K (Gaussian integrals, no expansion)."""
import math

import pytest
import torch

from deepeft.core import gaussian as gi
from deepeft.core.activations import get_activation
from deepeft.theory import chi_parallel, chi_perp, criticality, large_depth_asymptotics


def iterate(act, C_W, L):
    K, out = 1.0, {}
    for l in range(1, L + 1):
        K = C_W * float(gi.single(act, K, 2))
        out[l] = K
    return out


def test_elu_is_critical_with_inverse_square_decay():
    cp = criticality("elu")
    assert cp.exists and cp.universality_class == "K*=0 (kink)"
    assert cp.C_b == 0.0 and cp.C_W == pytest.approx(1.0)
    assert cp.constants["c"] == pytest.approx(math.sqrt(2 / math.pi), rel=1e-9)
    K = iterate(get_activation("elu"), cp.C_W, 1000)
    r100, r1000 = K[100] * 100 ** 2 / (2 * math.pi), K[1000] * 1000 ** 2 / (2 * math.pi)
    assert abs(r1000 - 1) < 0.015 and abs(r1000 - 1) < abs(r100 - 1) / 3  # 1.011 and 1.055: converging to 2π
    act = get_activation("elu")
    assert chi_parallel(act, K[300], 1.0) == pytest.approx(1 - 3 / 300, abs=2e-4)
    assert chi_perp(act, K[300], 1.0) == pytest.approx(1 - 2 / 300, abs=2e-4)
    asym = large_depth_asymptotics("elu", [1000])
    assert asym["K"][0] == pytest.approx(2 * math.pi / 1000 ** 2)


@pytest.mark.parametrize("fn, alpha_minus_s2", [
    (torch.nn.functional.selu, None),
    (lambda z: torch.nn.functional.celu(z, alpha=2.0), None),
    (lambda z: torch.where(z > 0, z, z + 0.5 * z * z), None),   # a user callable with a σ'' jump
])
def test_kinked_callables(fn, alpha_minus_s2):
    act = get_activation(fn)
    cp = criticality(act)
    assert cp.universality_class == "K*=0 (kink)" and cp.C_b == 0.0
    c = cp.constants["c"]
    K = iterate(act, cp.C_W, 300)
    assert K[300] * 300 ** 2 * c * c / 4 == pytest.approx(1.0, abs=0.04)


def test_selu_constants_are_one_sided():
    cp = criticality(torch.nn.functional.selu)
    lam, alpha = 1.0507009873554805, 1.6732632423543772
    A2 = (lam ** 2 + (lam * alpha) ** 2) / 2       # σ₁ = λ right, λα left
    assert cp.C_W == pytest.approx(1 / A2, rel=1e-9)
    assert cp.constants["B"] == pytest.approx(-math.sqrt(2 / math.pi) * (lam * alpha) ** 2, rel=1e-9)


def test_smooth_classes_unchanged():
    assert criticality("tanh").universality_class == "K*=0"
    assert criticality("gelu").universality_class == "half-stable"
    assert criticality("sigmoid").universality_class == "none"
