"""Helpers for the Bayesian tests: potentials as nn.Modules, deep linear nets, whitened data."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn


class Potential(nn.Module):
    """A module whose 'loss' is a fixed function K(w) of its parameter vector w (data ignored).

    forward(x) returns K(w) repeated for every row of x, so ``loss_fn = mean_loss`` gives L_n(w) = K(w).
    """

    def __init__(self, K, w0, dtype=torch.float64):
        super().__init__()
        self.K = K
        self.w = nn.Parameter(torch.as_tensor(w0, dtype=dtype).clone())

    def forward(self, x):
        return self.K(self.w).expand(x.shape[0])


def mean_loss(out, y):
    return out.mean()


def dummy_data(n=1, dtype=torch.float64):
    return torch.zeros(n, 1, dtype=dtype)


def dln(widths, dtype=torch.float64):
    m = nn.Sequential(*[nn.Linear(a, b, bias=False) for a, b in zip(widths[:-1], widths[1:])]).to(dtype)
    with torch.no_grad():
        for layer in m:
            layer.weight.zero_()
    return m


def rank_r_point(widths, r, dtype=torch.float64):
    """DLN whose every factor is [I_r 0; 0 0]: each factor has rank exactly r (slt.md §2)."""
    m = dln(widths, dtype)
    with torch.no_grad():
        for layer in m:
            layer.weight.zero_()
            for i in range(r):
                layer.weight[i, i] = 1.0
    return m


def whitened_inputs(n, d, seed=0, dtype=torch.float64):
    """x with xᵀx/n = I exactly, so ½‖f(x) − y‖² averaged over samples is ½‖W − W*‖²_F."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, d, generator=g, dtype=dtype))
    return q * math.sqrt(n)


def within(est, se, truth, k=4.0):
    return abs(est - truth) < k * se, f"estimate {est:.5g} ± {se:.2g} vs truth {truth:.5g} (|Δ| = {abs(est - truth) / se:.2f}σ)"
