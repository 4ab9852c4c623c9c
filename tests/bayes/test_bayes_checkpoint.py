"""Interrupt and resume: sample(..., checkpoint=...) continues a run bit-identically (in-memory data)."""
import signal

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from deepeft.bayes import estimate_llc, sample
from deepeft.core.errors import ParameterError

FIELDS = ("loss_trace", "step_loss", "distance_trace", "param_draws", "pair_loss_trace", "observables",
          "mala_acceptance")


def _problem():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2)).double()
    x, y = torch.randn(300, 3, dtype=torch.float64), torch.randn(300, 2, dtype=torch.float64)
    return m, x, y


def interrupting_loss(at_call: int):
    """Mean squared error that sends SIGINT to this process at its ``at_call``-th evaluation (a Ctrl-C
    in the middle of a run); the generic path evaluates it once per step."""
    calls = {"n": 0}

    def loss(out, y):
        calls["n"] += 1
        if calls["n"] == at_call:
            signal.raise_signal(signal.SIGINT)
        return ((out - y) ** 2).mean()

    return loss


def _same(a, b):
    for f in FIELDS:
        u, v = getattr(a, f), getattr(b, f)
        assert (u is None) == (v is None), f
        if u is not None:
            assert np.array_equal(u, v, equal_nan=True), f
    assert torch.equal(a.final_flat, b.final_flat)
    assert a.diverged.tolist() == b.diverged.tolist()


@pytest.mark.parametrize("variant", [
    dict(),                                                           # plain SGLD (double-buffered state)
    dict(precondition="rmsprop", loss_eval="two_batch", mala_every=3),  # pSGLD state V, pair trace, MH diagnostic
    dict(sampler="mala", lr=1e-4, observable=lambda out, y: out.mean(0)),  # MALA state, observables
])
def test_interrupted_run_resumes_bit_identically(tmp_path, variant):
    m, x, y = _problem()
    kw = dict(lr=1e-3, localization=10.0, num_chains=3, num_draws=40, num_steps_bw_draws=3, num_burnin_steps=30,
              batch_size=32, seed=4, record_params=True)
    kw.update(variant)
    ref = sample(m, (x, y), interrupting_loss(10 ** 9), **kw)
    path = tmp_path / "run.ckpt"
    with pytest.raises(KeyboardInterrupt, match="saved"):
        sample(m, (x, y), interrupting_loss(75), checkpoint=path, checkpoint_every=25, **kw)
    step = torch.load(path, weights_only=False)["step"]
    assert 50 <= step <= 80  # saved at the step boundary after the interrupt (not the last periodic one)
    res = sample(m, (x, y), interrupting_loss(10 ** 9), checkpoint=path, checkpoint_every=25, **kw)
    _same(ref, res)
    # the finished run's checkpoint is kept: repeating the call returns the same result after one step
    again = sample(m, (x, y), interrupting_loss(10 ** 9), checkpoint=path, **kw)
    _same(ref, again)


def test_checkpoint_of_another_run_is_refused(tmp_path):
    m, x, y = _problem()
    path = tmp_path / "run.ckpt"
    kw = dict(localization=10.0, num_chains=2, num_draws=10, num_burnin_steps=5, batch_size=32, checkpoint=path)
    sample(m, (x, y), "mse", lr=1e-3, **kw)
    with pytest.raises(ParameterError, match="checkpoint.*lr"):
        sample(m, (x, y), "mse", lr=2e-3, **kw)
    with pytest.raises(ParameterError, match="checkpoint.*data differ"):
        sample(m, (x + 1.0, y), "mse", lr=1e-3, **kw)
    (tmp_path / "junk.ckpt").write_text("not a checkpoint")
    with pytest.raises(ParameterError, match="checkpoint"):
        sample(m, (x, y), "mse", lr=1e-3, **{**kw, "checkpoint": tmp_path / "junk.ckpt"})
    with pytest.raises(ParameterError, match="checkpoint_every"):
        sample(m, (x, y), "mse", lr=1e-3, **{**kw, "checkpoint_every": 0})
    with pytest.raises(ParameterError, match="checkpoint"):
        sample(m, (x, y), "mse", lr=1e-3, **{**kw, "checkpoint": 3})


def test_dataloader_run_resumes(tmp_path):
    # a DataLoader restarts its iteration on resume: the continuation is a valid run, not a bitwise copy
    m, x, y = _problem()
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
    path = tmp_path / "run.ckpt"
    kw = dict(lr=1e-3, localization=10.0, num_chains=2, num_draws=30, num_burnin_steps=20, seed=1)
    with pytest.raises(KeyboardInterrupt):
        estimate_llc(m, loader, interrupting_loss(30), checkpoint=path, checkpoint_every=10, **kw)
    r = estimate_llc(m, loader, interrupting_loss(10 ** 9), checkpoint=path, **kw)
    assert r.loss_trace.shape == (2, 30) and np.all(np.isfinite(r.loss_trace)) and np.isfinite(r.llc_mean)
