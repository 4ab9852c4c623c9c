"""The kernel/driver split: a sampler added as in docs/architecture.md runs through the one driver,
and every built-in kernel checkpoints and resumes through it (Gibbs too)."""
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from deepeft.bayes import sample
from deepeft.bayes.kernels import KERNELS

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


@pytest.fixture
def gd_kernel():
    block = re.search(r"### Adding a sampler.*?```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    ns: dict = {}
    exec(compile(block, str(DOC), "exec"), ns)
    yield ns["GradientDescent"]
    KERNELS.pop("gd", None)


def test_the_documented_toy_sampler_runs_through_the_driver(gd_kernel, tmp_path):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(3, 2)).double()
    x, y = torch.randn(50, 3, dtype=torch.float64), torch.randn(50, 2, dtype=torch.float64)
    kw = dict(sampler="gd", lr=[1e-3, 2e-3], nbeta=10.0, localization=5.0, num_chains=2, num_draws=20,
              num_burnin_steps=5, seed=0)
    res = sample(m, (x, y), "mse", **kw)
    # the same descent by hand: w ← w − (ε/2)(nβ∇L_n + γ(w − w*)), 25 steps; draws are states 6 … 25
    w0 = torch.cat([p.detach().reshape(-1) for p in m.parameters()])
    for ci, lr in enumerate((1e-3, 2e-3)):
        w = w0.clone().requires_grad_(True)
        losses = []
        for s in range(26):
            W, b = w[:6].reshape(2, 3), w[6:]
            L = ((x @ W.T + b - y) ** 2).mean()
            (g,) = torch.autograd.grad(L, w)
            losses.append(float(L.detach()))
            with torch.no_grad():
                w = (w - 0.5 * lr * (10.0 * g + 5.0 * (w - w0))).requires_grad_(True)
        np.testing.assert_allclose(res.step_loss[ci], losses, rtol=1e-12)
        np.testing.assert_allclose(res.loss_trace[ci], losses[6:], rtol=1e-12)
    assert res.loss_trace[:, -1].max() < res.init_loss  # downhill
    # the driver's checkpoint works for it unchanged
    ck = sample(m, (x, y), "mse", checkpoint=tmp_path / "gd.ckpt", **kw)
    assert np.array_equal(ck.loss_trace, res.loss_trace)


def test_gibbs_checkpoint_resumes_bit_identically(tmp_path):
    # Gibbs runs through the same driver, so it checkpoints and resumes like the Langevin kernels
    import signal

    torch.manual_seed(1)
    m = nn.Sequential(nn.Linear(4, 3, bias=False), nn.Linear(3, 4, bias=False)).double()
    x = torch.randn(100, 4, dtype=torch.float64)
    y = x @ torch.randn(4, 4, dtype=torch.float64) * 0.3
    kw = dict(sampler="gibbs", localization=2.0, nbeta=50.0, num_chains=2, num_draws=30, num_burnin_steps=10,
              seed=3, record_params=True)
    ref = sample(m, (x, y), "gaussian_nll", **kw)
    path = tmp_path / "g.ckpt"
    calls = {"n": 0}
    eigh = torch.linalg.eigh

    def interrupting_eigh(*a, **k):  # two per factor per sweep: Ctrl-C in the 20th sweep
        calls["n"] += 1
        if calls["n"] == 2 * 2 * 20:
            signal.raise_signal(signal.SIGINT)
        return eigh(*a, **k)

    torch.linalg.eigh = interrupting_eigh
    try:
        with pytest.raises(KeyboardInterrupt, match="saved"):
            sample(m, (x, y), "gaussian_nll", checkpoint=path, checkpoint_every=7, **kw)
    finally:
        torch.linalg.eigh = eigh
    assert 15 <= torch.load(path, weights_only=False)["step"] <= 25
    res = sample(m, (x, y), "gaussian_nll", checkpoint=path, **kw)
    for f in ("loss_trace", "step_loss", "distance_trace", "param_draws"):
        assert np.array_equal(getattr(res, f), getattr(ref, f)), f
    assert torch.equal(res.final_flat, ref.final_flat)
