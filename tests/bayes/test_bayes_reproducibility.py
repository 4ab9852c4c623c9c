"""Seeds reproduce exactly on CPU; DataLoaders and weight restriction work."""
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from deepeft.bayes import estimate_llc, quadratic_llc_expectation, sample
from bayes_helpers import dummy_data, mean_loss, within


def mlp():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    x = torch.randn(256, 4)
    y = torch.sin(x.sum(1, keepdim=True))
    return m, x, y


def test_same_seed_same_numbers_exactly():
    m, x, y = mlp()
    kw = dict(lr=1e-3, localization=50.0, num_chains=3, num_draws=40, batch_size=32, mala_every=5)
    a = sample(m, (x, y), "mse", seed=7, **kw)
    b = sample(m, (x, y), "mse", seed=7, **kw)
    c = sample(m, (x, y), "mse", seed=8, **kw)
    assert np.array_equal(a.loss_trace, b.loss_trace) and np.array_equal(a.step_loss, b.step_loss)
    assert np.array_equal(a.mala_acceptance, b.mala_acceptance)
    assert torch.equal(a.final_flat, b.final_flat)
    assert not np.array_equal(a.loss_trace, c.loss_trace)
    # chains are independent: different traces from the same start
    assert not np.array_equal(a.loss_trace[0], a.loss_trace[1])
    # the model itself is untouched
    m2, _, _ = mlp()
    assert all(torch.equal(p, q) for p, q in zip(m.parameters(), m2.parameters()))


def test_dataloader_input_and_init_loss_over_all_batches():
    m, x, y = mlp()
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0))
    r = estimate_llc(m, loader, "mse", lr=1e-3, localization=50.0, num_chains=2, num_draws=20)
    full = float(torch.nn.functional.mse_loss(m(x), y))
    assert r.init_loss == pytest.approx(full, rel=1e-5)
    assert r.n == 256 and r.nbeta == pytest.approx(256 / np.log(256))
    assert "DataLoader" in r.config["init_loss_source"]


class TwoBlocks(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.zeros(3, dtype=torch.float64))
        self.b = nn.Parameter(torch.zeros(2, dtype=torch.float64))

    def forward(self, x):
        return (0.5 * torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64) * self.a ** 2).sum().expand(x.shape[0]) + \
               (0.5 * 4.0 * self.b ** 2).sum().expand(x.shape[0])


def test_weight_restricted_llc_counts_only_sampled_weights():
    t, g, eps = 40.0, 5.0, 0.002
    r = estimate_llc(TwoBlocks(), dummy_data(), mean_loss, params=["b"], lr=eps, nbeta=t, localization=g,
                     num_chains=8, num_draws=2000, num_burnin_steps=200, seed=3)
    truth = quadratic_llc_expectation([4.0, 4.0], t, g, lr=eps)
    ok, msg = within(r.llc_mean, r.llc_se, truth)
    assert ok, msg
    assert r.config["sampled_params"] == ["b"] and r.config["num_sampled"] == 2


def test_sequential_fast_path_matches_vmapped_functional_call():
    """The chains-batched nn.Sequential forward with explicit backpropagation (Linear + activations) is
    the same function as the generic vmap(functional_call) + autograd path: losses and gradients agree,
    incl. frozen layers and shared x."""
    from deepeft.bayes.samplers import _Engine, select_parameters

    torch.manual_seed(3)
    # closed-form activation derivatives (Tanh, ReLU, LeakyReLU, Sigmoid) and the autograd one (GELU)
    m = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 8, bias=False), nn.GELU(), nn.Linear(8, 8), nn.ReLU(),
                      nn.Linear(8, 8), nn.LeakyReLU(0.1), nn.Linear(8, 8), nn.Sigmoid(), nn.Linear(8, 2)).double()
    x, y = torch.randn(3, 16, 4, dtype=torch.float64), torch.randn(3, 16, 2, dtype=torch.float64)
    for params in (None, ["0.*", "4.weight"], ["8.*"]):
        lay = select_parameters(m, params)
        eng = _Engine(m, lay, lambda o, t: ((o - t) ** 2).mean())
        assert eng.fast is not None
        flat = lay.flatten(dict(m.named_parameters())).expand(3, -1).clone() + 0.1 * torch.randn(3, lay.P, dtype=torch.float64)
        for xb, yb, xdim in ((x, y, 0), (x[0], y[0], None)):
            L1, g1 = eng.loss_and_grad(flat, xb, yb, xdim)
            fast, eng.fast = eng.fast, None
            L2, g2 = eng.loss_and_grad(flat, xb, yb, xdim)
            eng.fast = fast
            assert torch.allclose(L1, L2, rtol=1e-12, atol=0) and torch.allclose(g1, g2, rtol=1e-10, atol=1e-14)
    # anything else (hooks, non-Sequential, other layer types) takes the generic path
    m.register_forward_hook(lambda *a: None)
    assert _Engine(m, select_parameters(m), lambda o, t: o.mean()).fast is None
    assert _Engine(nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2)), select_parameters(nn.Sequential(nn.Linear(2, 2))), None).fast is None


def test_rank_normalisation_matches_scipy():
    from scipy import stats

    from deepeft.bayes.diagnostics import _rank_normalise

    rng = np.random.default_rng(0)
    for a in (rng.normal(size=(4, 100)), rng.integers(0, 5, size=(3, 50)).astype(float)):
        r = stats.rankdata(a, method="average").reshape(a.shape)
        ref = stats.norm.ppf((r - 3.0 / 8.0) / (a.size + 1.0 / 4.0))
        assert np.allclose(_rank_normalise(a), ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["mse", "gaussian_nll", "cross_entropy"])
def test_builtin_loss_closed_form_gradients_match_autograd(name):
    """The closed-form dL/d output of the built-in losses gives the same losses and gradients as
    vmapping the same function and differentiating it (per-chain and shared minibatches)."""
    from deepeft.bayes._data import LOSSES
    from deepeft.bayes.samplers import _Engine, select_parameters

    torch.manual_seed(4)
    m = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    lay = select_parameters(m)
    flat = lay.flatten(dict(m.named_parameters())).expand(3, -1).clone() + 0.1 * torch.randn(3, lay.P, dtype=torch.float64)
    x = torch.randn(3, 16, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (3, 16)) if name == "cross_entropy" else torch.randn(3, 16, 3, dtype=torch.float64)
    f = LOSSES[name]
    closed, generic = _Engine(m, lay, f), _Engine(m, lay, lambda o, t: f(o, t))
    assert closed.loss_grad is not None and generic.loss_grad is None
    for xb, yb, xdim in ((x, y, 0), (x[0], y[0], None)):
        L1, g1 = closed.loss_and_grad(flat, xb, yb, xdim)
        L2, g2 = generic.loss_and_grad(flat, xb, yb, xdim)
        assert torch.allclose(L1, L2, rtol=1e-13, atol=0) and torch.allclose(g1, g2, rtol=1e-12, atol=1e-15)
        assert torch.allclose(closed.losses(flat, xb, yb, xdim), L2, rtol=1e-13, atol=0)


def test_standard_torch_losses_resolve_to_the_builtins():
    """F.mse_loss / nn.MSELoss() and F.cross_entropy / nn.CrossEntropyLoss() with default arguments
    take the closed-form path (same function); other arguments keep the user's callable."""
    from deepeft.bayes._data import LOSSES, resolve_loss

    F = torch.nn.functional
    assert resolve_loss(F.mse_loss) is LOSSES["mse"] and resolve_loss(nn.MSELoss()) is LOSSES["mse"]
    assert resolve_loss(F.cross_entropy) is LOSSES["cross_entropy"]
    assert resolve_loss(nn.CrossEntropyLoss()) is LOSSES["cross_entropy"]
    for other in (nn.MSELoss(reduction="sum"), nn.CrossEntropyLoss(label_smoothing=0.1),
                  nn.CrossEntropyLoss(weight=torch.ones(3)), nn.L1Loss()):
        assert resolve_loss(other) is other
    # the same chain as with the callable through the generic path
    torch.manual_seed(5)
    m = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    x, y = torch.randn(200, 3, dtype=torch.float64), torch.randn(200, 2, dtype=torch.float64)
    kw = dict(lr=1e-4, localization=10.0, num_chains=2, num_draws=20, batch_size=50, seed=1)
    a = sample(m, (x, y), nn.MSELoss(), **kw)
    b = sample(m, (x, y), lambda o, t: F.mse_loss(o, t), **kw)
    assert np.allclose(a.loss_trace, b.loss_trace, rtol=1e-12, atol=0)


def test_auto_burnin_covers_three_localisation_relaxation_times():
    import math

    from deepeft.bayes.samplers import auto_burnin

    model = nn.Sequential(nn.Linear(2, 1)).double()
    x = torch.randn(50, 2, dtype=torch.float64)
    y = torch.randn(50, 1, dtype=torch.float64)
    r = sample(model, (x, y), "mse", lr=1e-3, localization=10.0, num_chains=2, num_draws=40)
    assert r.num_burnin_steps == math.ceil(3 / (1e-3 * 10.0)) == 300 and r.config["num_burnin_steps"] == 300
    assert r.step_loss.shape == (2, 300 + 1 + 39 + 1)
    assert auto_burnin("sgld", [1e-3, 5e-4], 10.0, 100, 1) == 600           # the slowest chain sets it
    assert auto_burnin("sgld", [1e-7], 1.0, 20, 5) == 1000                  # capped at 10× the draws' span
    assert auto_burnin("mala", [1e-3], 0.0, 20, 1) == 0                     # no localisation, no relaxation bound
    assert auto_burnin("gibbs", [float("nan")], 1.0, 200, 1) == 50          # exact conditionals
    est = estimate_llc(model, (x, y), "mse", lr=1e-3, localization=10.0, num_chains=2, num_draws=40)
    assert not any("relaxation" in w for w in est.diagnostics["warnings"])
    with pytest.raises(Exception, match="num_burnin_steps"):
        sample(model, (x, y), "mse", num_burnin_steps="later")
