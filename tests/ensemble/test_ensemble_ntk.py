import numpy as np
import pytest
import torch
from torch import nn

from deepeft.core.errors import ParameterError
from deepeft.core.spec import MLPSpec
from deepeft.ensemble import empirical_ntk, measure


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Linear(3, 4)
        self.b = nn.Linear(4, 2)

    def forward(self, x):
        return self.b(torch.tanh(self.a(x)))


def _hand_jacobian(m: Tiny, x: torch.Tensor) -> torch.Tensor:
    """∂f_o(x_n)/∂θ written out by hand: (N, O, P) in the order a.weight, a.bias, b.weight, b.bias."""
    W1, b1, W2 = m.a.weight.detach(), m.a.bias.detach(), m.b.weight.detach()
    rows = []
    for xn in x:
        h = torch.tanh(W1 @ xn + b1)
        dh = 1 - h**2
        per_o = []
        for o in range(2):
            g = W2[o] * dh  # ∂f_o/∂(W1 x + b1)
            dW1 = torch.outer(g, xn)
            dW2 = torch.zeros(2, 4, dtype=x.dtype)
            dW2[o] = h
            db2 = torch.zeros(2, dtype=x.dtype)
            db2[o] = 1.0
            per_o.append(torch.cat([dW1.flatten(), g, dW2.flatten(), db2]))
        rows.append(torch.stack(per_o))
    return torch.stack(rows)


@pytest.mark.parametrize("method", ["jacobian", "ntk_vp", "auto"])
def test_empirical_ntk_matches_hand_jacobian(method):
    m = Tiny().double()
    x1 = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x2 = torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    J1, J2 = _hand_jacobian(m, x1), _hand_jacobian(m, x2)
    full = torch.einsum("nap,mbp->nmab", J1, J2)
    got = empirical_ntk(m, x1, x2, "full", method=method)
    assert got.shape == (5, 3, 2, 2)
    torch.testing.assert_close(got, full, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(empirical_ntk(m, x1, x2, "trace", method=method), torch.einsum("nmaa->nm", full))
    torch.testing.assert_close(empirical_ntk(m, x1, x2, "diagonal", method=method), torch.einsum("nmaa->nma", full))
    # x2=None means x2 = x1
    torch.testing.assert_close(empirical_ntk(m, x1, compute="trace", method=method),
                               torch.einsum("nap,map->nm", J1, J1))


def test_empirical_ntk_rates_and_frozen_parameters():
    m = Tiny().double()
    x = torch.randn(4, 3, dtype=torch.float64)
    J = _hand_jacobian(m, x)
    rates = {"a.weight": 0.5, "b.bias": 3.0}
    w = torch.cat([torch.full((12,), 0.5), torch.ones(4), torch.ones(8), torch.full((2,), 3.0)]).double()
    expect = torch.einsum("nap,p,mbp->nmab", J, w, J)
    torch.testing.assert_close(empirical_ntk(m, x, rates=rates, method="jacobian"), expect)
    torch.testing.assert_close(empirical_ntk(m, x, rates=rates, method="ntk_vp"), expect)
    m.a.requires_grad_(False)  # frozen first layer drops out of the NTK
    expect2 = torch.einsum("nap,mbp->nmab", J[..., 16:], J[..., 16:])
    torch.testing.assert_close(empirical_ntk(m, x), expect2)


def test_empirical_ntk_errors():
    m = Tiny()
    for p in m.parameters():
        p.requires_grad_(False)
    with pytest.raises(ParameterError, match="requires grad"):
        empirical_ntk(m, torch.randn(2, 3))
    with pytest.raises(ParameterError, match="compute"):
        empirical_ntk(Tiny(), torch.randn(2, 3), compute="eigen")
    with pytest.raises(ParameterError, match="nn.Module"):
        empirical_ntk(lambda x: x, torch.randn(2, 3))


def test_ensemble_ntk_forward_equation_equals_autograd(unit_inputs):
    # the exact forward equation (pdlt §5.1) and torch.func Jacobians with per-parameter rates agree
    x = unit_inputs(2, 4)
    for param, res in (("ntk", None), ("standard", (0.8, 0.6))):
        spec = MLPSpec.make("tanh", 4, 8, 4, C_W=1.3, C_b=0.2, output_width=3, parameterization=param, residual=res)
        a = measure(spec, x, ensemble=48, seed=3, quantities=("NTK_fluct",), ntk_method="forward")
        b = measure(spec, x, ensemble=48, seed=3, quantities=("NTK_fluct",), ntk_method="autograd")
        for k in a.values:
            np.testing.assert_allclose(a[k], b[k], rtol=1e-9, atol=1e-10)


def test_relu_ntk_mean_exact_and_fluctuations_recorded(unit_inputs):
    # critical ReLU, ntk param: Θ^(l) = l·θ exactly in expectation (λ = C: θ = C_b + C_W|x|²/n_0 = 2)
    spec = MLPSpec.make("relu", 4, 16, 4, C_W=2.0, C_b=0.0, output_width=4)
    x = unit_inputs(1, 4)
    obs = measure(spec, x, ensemble=1500, seed=0, quantities=("NTK_fluct",))
    th = 2.0 * np.arange(1, 5)
    z = (obs["Theta"][:, 0, 0] - th) / np.where(obs.errors["Theta"][:, 0, 0] > 0, obs.errors["Theta"][:, 0, 0], 1)
    assert np.abs(z).max() < 4
    assert np.all(obs["Theta_var"][1:, 0, 0] > 0) and obs["Theta_var"][0, 0, 0] == pytest.approx(0, abs=1e-12)
    assert np.all(np.isfinite(obs["NTK_B"][1:]))
