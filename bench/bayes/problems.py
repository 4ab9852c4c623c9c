"""Benchmark problems shared by every tool (pure torch, importable from each tool's venv).

Both problems are built deterministically and saved to ``problems.pt`` by ``run_all.py`` so every
tool samples exactly the same weights and data:

* ``dln``: deep linear network widths [100, 50, 50, 100] (12 500 parameters, no biases) at a
  rank-r factor point (every factor = [I_r 0; 0 0], r = 10), data x ~ N(0, I_100), n = 10 000,
  noise-free teacher y = f_{w*}(x).  Loss: ½‖y − f‖² summed over outputs, mean over samples (the
  Gaussian NLL with σ = 1 up to a constant), so Aoyagi's λ is the target:
  λ([100,50,50,100], r=10) = 1750, m = 1.
* ``mlp``: tanh MLP [20, 64, 64, 1] (5 569 parameters) trained by Adam on y = sin(x·a) + 0.1 ε,
  n = 10 000.  Loss: same Gaussian-NLL form.  No ground truth: wall time and spread only.
"""
from __future__ import annotations

import math

import torch
from torch import nn

DLN_WIDTHS = [100, 50, 50, 100]
DLN_RANK = 10
N = 10_000


def nll(out, y):
    d = out - y
    return 0.5 * (d * d).sum(-1).mean()


def build_dln():
    m = nn.Sequential(*[nn.Linear(a, b, bias=False) for a, b in zip(DLN_WIDTHS[:-1], DLN_WIDTHS[1:])])
    with torch.no_grad():
        for layer in m:
            layer.weight.zero_()
            for i in range(DLN_RANK):
                layer.weight[i, i] = 1.0
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, DLN_WIDTHS[0], generator=g)
    with torch.no_grad():
        y = m(x)
    return m, x, y


def build_mlp():
    torch.manual_seed(1)
    m = nn.Sequential(nn.Linear(20, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1))
    g = torch.Generator().manual_seed(2)
    x = torch.randn(N, 20, generator=g)
    a = torch.randn(20, generator=g) / math.sqrt(20)
    y = torch.sin(x @ a)[:, None] + 0.1 * torch.randn(N, 1, generator=g)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    for step in range(1500):
        idx = torch.randint(0, N, (256,), generator=g)
        opt.zero_grad()
        nll(m(x[idx]), y[idx]).backward()
        opt.step()
    return m, x, y


def make_model(kind: str) -> nn.Module:
    if kind == "dln":
        return nn.Sequential(*[nn.Linear(a, b, bias=False) for a, b in zip(DLN_WIDTHS[:-1], DLN_WIDTHS[1:])])
    return nn.Sequential(nn.Linear(20, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1))


def load(path: str, kind: str):
    blob = torch.load(path, weights_only=False)[kind]
    m = make_model(kind)
    m.load_state_dict(blob["state"])
    return m, blob["x"], blob["y"], blob["settings"]
