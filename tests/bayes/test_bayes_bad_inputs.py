"""Every bad input of issue 4 raises a clear error naming the parameter and the allowed range;
divergent step sizes are detected and reported, never averaged silently."""
import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from deepeft.bayes import DivergenceWarning, estimate_llc, rhat, sample
from deepeft.core.errors import DivergenceError, ParameterError
from bayes_helpers import Potential, dummy_data, mean_loss


def small():
    torch.manual_seed(0)
    return nn.Linear(3, 2).double(), (torch.randn(40, 3, dtype=torch.float64), torch.randn(40, 2, dtype=torch.float64))


def test_empty_data():
    m, _ = small()
    with pytest.raises(ParameterError, match="data.*at least one sample"):
        estimate_llc(m, (torch.empty(0, 3, dtype=torch.float64), torch.empty(0, 2, dtype=torch.float64)))
    from torch.utils.data import DataLoader, TensorDataset
    empty = DataLoader(TensorDataset(torch.empty(0, 3), torch.empty(0, 2)), batch_size=4)
    with pytest.raises(ParameterError, match="data"):
        estimate_llc(nn.Linear(3, 2), empty)


def test_nan_in_data_and_parameters():
    m, (x, y) = small()
    x[3, 1] = float("nan")
    with pytest.raises(ParameterError, match=r"data \(inputs\).*finite"):
        estimate_llc(m, (x, y))
    m, (x, y) = small()
    y[0, 0] = float("inf")
    with pytest.raises(ParameterError, match=r"data \(targets\).*finite"):
        estimate_llc(m, (x, y))
    m, (x, y) = small()
    with torch.no_grad():
        m.weight[0, 0] = float("nan")
    with pytest.raises(ParameterError, match="weight.*finite"):
        estimate_llc(m, (x, y))


def test_loss_not_scalar():
    m, data = small()
    with pytest.raises(ParameterError, match="loss_fn.*scalar"):
        estimate_llc(m, data, lambda out, y: (out - y) ** 2)


@pytest.mark.parametrize("kw,name,allowed", [
    (dict(nbeta=0.0), "nbeta", "> 0"), (dict(nbeta=-3.0), "nbeta", "> 0"),
    (dict(localization=-1.0), "localization", ">= 0"),
    (dict(lr=0.0), "lr", "> 0"), (dict(lr=-1e-3), "lr", "> 0"), (dict(lr=float("nan")), "lr", "finite"),
    (dict(num_chains=0), "num_chains", ">= 1"), (dict(num_draws=0), "num_draws", ">= 1"),
    (dict(sampler="hmc"), "sampler", "sgld"), (dict(device="cuda:7"), "device", "cpu"),
    (dict(batch_size=0), "batch_size", ">= 1"),
])
def test_parameter_ranges(kw, name, allowed):
    m, data = small()
    with pytest.raises(ParameterError) as ei:
        estimate_llc(m, data, num_draws=kw.pop("num_draws", 4), **kw)
    assert ei.value.name == name and allowed in str(ei.value)


def test_cuda_requested_but_absent():
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    m, data = small()
    with pytest.raises(ParameterError, match="device.*CUDA was requested"):
        estimate_llc(m, data, device="cuda")


def test_no_parameter_requires_grad():
    m, data = small()
    for p in m.parameters():
        p.requires_grad_(False)
    with pytest.raises(ParameterError, match="requires_grad"):
        estimate_llc(m, data)
    m, data = small()
    with pytest.raises(ParameterError, match="params"):
        estimate_llc(m, data, params=["no_such_layer.*"])


def test_rhat_needs_two_chains_and_enough_draws():
    m, data = small()
    with pytest.raises(ParameterError, match="num_chains"):
        estimate_llc(m, data, num_chains=1, num_draws=50, require_rhat=True)
    with pytest.raises(ParameterError, match="num_draws"):
        estimate_llc(m, data, num_chains=4, num_draws=1, require_rhat=True)
    with pytest.raises(ParameterError, match="num_chains"):
        rhat(np.zeros((1, 100)))
    with pytest.raises(ParameterError, match="num_draws"):
        rhat(np.zeros((3, 1)))


def test_step_size_beyond_stability_bound_is_detected_before_sampling():
    h = torch.tensor([1.0, 10.0], dtype=torch.float64)
    model = Potential(lambda w: 0.5 * (h * w * w).sum(), torch.zeros(2))
    # a_max = nβ·10 + γ = 101: ε = 0.05 gives εa = 5.05 >= 4 for the second half of the chains only
    with pytest.warns(DivergenceWarning, match="stability bound"):
        res = sample(model, dummy_data(), mean_loss, lr=[0.001, 0.001, 0.05, 0.05], nbeta=10.0, localization=1.0,
                     num_chains=4, num_draws=50)
    assert res.diverged.tolist() == [False, False, True, True]
    assert np.all(np.isnan(res.loss_trace[2:])) and np.all(np.isfinite(res.loss_trace[:2]))
    with pytest.raises(DivergenceError, match="stability bound"):
        estimate_llc(model, dummy_data(), mean_loss, lr=0.05, nbeta=10.0, localization=1.0, num_draws=10)


def test_runtime_divergence_stops_the_chain():
    # quartic potential: flat at w* = 0 (the pre-check sees no curvature), explodes once a chain wanders
    model = Potential(lambda w: (w ** 4).sum(), torch.zeros(3))
    with pytest.warns(DivergenceWarning):
        res = sample(model, dummy_data(), mean_loss, lr=[1e-3, 1e-3, 3.0, 3.0], nbeta=100.0, localization=1.0,
                     num_chains=4, num_draws=300, seed=0)
    assert res.diverged[2] and res.diverged[3] and not res.diverged[:2].any()
    assert all(res.divergence_step[2:] > 0)
    assert "NaN" in res.divergence_reason[2] or "exceeded" in res.divergence_reason[2]
    out = estimate_llc(model, dummy_data(), mean_loss, lr=[1e-3, 1e-3, 3.0, 3.0], nbeta=100.0, localization=1.0,
                       num_chains=4, num_draws=300)
    assert math.isfinite(out.llc_mean) and not out.ok and out.diagnostics["diverged"] == [False, False, True, True]
    assert np.isnan(out.llc_per_chain[2])
    with pytest.raises(DivergenceError, match="diverged"):
        sample(model, dummy_data(), mean_loss, lr=3.0, nbeta=100.0, localization=1.0, num_chains=2, num_draws=300)
    with pytest.raises(DivergenceError):
        sample(model, dummy_data(), mean_loss, lr=[1e-3, 3.0], nbeta=100.0, localization=1.0, num_chains=2,
               num_draws=300, on_divergence="raise")


def test_extrapolate_lr_bad_inputs():
    from deepeft.bayes import estimate_llc
    from bayes_helpers import Potential, dummy_data, mean_loss
    import torch

    m = Potential(lambda w: 0.5 * (w * w).sum(), torch.zeros(2))
    with pytest.raises(ParameterError, match="num_chains"):
        estimate_llc(m, dummy_data(), mean_loss, num_chains=3, extrapolate_lr=True)
    with pytest.raises(ParameterError, match="lr"):
        estimate_llc(m, dummy_data(), mean_loss, lr=[1e-3] * 4, num_chains=4, extrapolate_lr=True)
    with pytest.raises(ParameterError, match="extrapolate_lr"):
        estimate_llc(m, dummy_data(), mean_loss, sampler="mala", num_chains=4, extrapolate_lr=True)


def test_divergence_step_is_the_first_non_finite_loss():
    """Health checks run every 10 steps, but the recorded divergence step is the exact first step with
    a non-finite loss, and every record from that step on is masked."""
    from deepeft.bayes import sample

    def quad(w):
        return 0.5 * (w * w).sum()

    def quad_nan_beyond_2(w):  # same potential and gradient for |w| ≤ 2, NaN beyond
        return torch.where(w.abs().max() > 2.0, torch.full_like(w[0], float("nan")), 0.5 * (w * w).sum())

    init = torch.tensor([[0.0], [1.9]], dtype=torch.float64)
    kw = dict(lr=[1e-4, 0.05], nbeta=1.0, localization=0.0, num_chains=2, num_draws=200, seed=2, init=init,
              record_params=True, check_stability=False)
    clean = sample(Potential(quad, torch.zeros(1)), dummy_data(), mean_loss, **kw)
    crossed = np.nonzero(np.abs(clean.param_draws[1, :, 0]) > 2.0)[0]
    assert crossed.size and crossed[0] % 10 not in (0, 9)  # a step inside a check block
    with pytest.warns(DivergenceWarning):
        res = sample(Potential(quad_nan_beyond_2, torch.zeros(1)), dummy_data(), mean_loss, **kw)
    s = 1 + int(crossed[0])  # draw j is the state at step 1 + j (no burn-in, one step between draws)
    assert res.diverged.tolist() == [False, True] and res.divergence_step[1] == s
    assert np.all(np.isfinite(res.step_loss[1, :s])) and np.all(np.isnan(res.step_loss[1, s:]))
    assert np.all(np.isnan(res.param_draws[1, s - 1:])) and np.all(np.isfinite(res.param_draws[1, :s - 1]))
    assert np.array_equal(res.param_draws[1, :s - 1], clean.param_draws[1, :s - 1])
    assert np.all(np.isfinite(res.loss_trace[0]))


def test_negative_llc_says_w_star_is_not_a_minimum():
    # K(w) = ½(w − 1)² sampled around w* = 0: the chains descend below L_n(w*) and λ̂ < 0
    model = Potential(lambda w: 0.5 * ((w - 1.0) ** 2).sum(), torch.zeros(2))
    with pytest.warns(Warning, match="not a local minimum"):
        r = estimate_llc(model, dummy_data(), mean_loss, lr=1e-3, nbeta=100.0, localization=1.0, num_draws=200, seed=0)
    assert r.llc_mean < 0
