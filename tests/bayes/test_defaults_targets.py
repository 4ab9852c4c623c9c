"""Issue 11 item 4 and the CLI's input errors: 1-D targets, class indices, numpy DATA.pt, unwritable --out."""
import json
import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from deepeft.bayes import blr_wbic, estimate_llc, wbic
from deepeft.bayes._data import match_target
from deepeft.cli import main
from deepeft.core.errors import ParameterError

SIGMA, S = 0.5, 1.0


def blr(n=100, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = X @ torch.tensor([1.0, -0.5, 0.3], dtype=torch.float64) + SIGMA * torch.randn(n, generator=g, dtype=torch.float64)
    return nn.Linear(d, 1, bias=False).double(), X, y  # y saved 1-D, "the way most people save it"


def test_match_target_rule():
    out = torch.zeros(5, 1)
    assert match_target(out, torch.zeros(5)).shape == (5, 1)          # one output: 1-D targets read as (n, 1)
    assert match_target(torch.zeros(3, 5, 1), torch.zeros(5)).shape == (5, 1)     # chains lead, shared targets
    assert match_target(torch.zeros(3, 5, 1), torch.zeros(3, 5)).shape == (3, 5, 1)
    with pytest.raises(ParameterError, match="targets"):
        match_target(torch.zeros(5, 2), torch.zeros(5))                 # two outputs, 1-D targets: ambiguous
    with pytest.raises(ParameterError, match="targets"):
        match_target(torch.zeros(5, 1), torch.zeros(4))


def test_cli_wbic_with_1d_targets_matches_closed_form(tmp_path, capsys):
    model, X, y = blr()
    mp, dp = tmp_path / "m.pt", tmp_path / "d.pt"
    torch.save(model, mp)
    torch.save({"x": X, "y": y}, dp)
    assert main(["bayes", "wbic", str(mp), "--data", str(dp), "--loss", "gaussian_nll", "--sigma", str(SIGMA),
                 "--prior-precision", str(1 / S ** 2), "--sampler", "mala", "--chains", "4", "--draws", "800",
                 "--burnin", "200", "--json", "--no-progress"]) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    truth = blr_wbic(X.numpy(), y.numpy(), SIGMA, S)   # ≈ 50·…, not the n×n-pairs value
    assert abs(r["value"] - truth) < 4 * r["se"], (r["value"], r["se"], truth)


def test_builtin_losses_with_1d_targets_equal_2d():
    model, X, y = blr(n=64)
    a = estimate_llc(model, (X, y), "gaussian_nll", lr=1e-4, num_chains=2, num_draws=20, seed=0)
    b = estimate_llc(model, (X, y[:, None]), "gaussian_nll", lr=1e-4, num_chains=2, num_draws=20, seed=0)
    assert a.init_loss == b.init_loss and a.llc_mean == b.llc_mean
    c = estimate_llc(model, (X, y), "mse", lr=1e-4, num_chains=2, num_draws=20, seed=0)
    assert c.init_loss == pytest.approx(float(((model(X).squeeze(-1) - y) ** 2).mean()))


def test_wbic_rejects_mse():
    model, X, y = blr()
    with pytest.raises(ParameterError, match="negative log-likelihood"):
        wbic(model, (X, y), "mse", prior_precision=1.0)


def test_cross_entropy_errors():
    X = torch.randn(32, 3)
    with pytest.raises(ParameterError, match="K >= 2"):
        estimate_llc(nn.Linear(3, 1), (X, torch.zeros(32, dtype=torch.long)), "cross_entropy", num_chains=2, num_draws=4)
    y = torch.zeros(32, dtype=torch.long)
    y[20] = 3
    with pytest.raises(ParameterError, match=r"class indices in \[0, 2\]"):
        estimate_llc(nn.Linear(3, 3), (X, y), "cross_entropy", num_chains=2, num_draws=4)
    with pytest.raises(ParameterError, match="targets"):
        estimate_llc(nn.Linear(3, 2), (X, torch.zeros(32, 3)), "mse", num_chains=2, num_draws=4)


def test_cli_numpy_data_and_unwritable_out(tmp_path, capsys):
    model, X, y = blr(n=32)
    mp, dp = tmp_path / "m.pt", tmp_path / "d.pt"
    torch.save(model, mp)
    torch.save(X.numpy(), dp)
    assert main(["llc", str(mp), "--data", str(dp), "--json", "--no-progress"]) != 0
    cap = capsys.readouterr()
    assert "numpy" in cap.out + cap.err
    torch.save({"x": X, "y": y}, dp)
    with pytest.raises(SystemExit):  # argparse rejects it before anything is sampled
        main(["llc", str(mp), "--data", str(dp), "--out", str(tmp_path / "no" / "such" / "r.json")])
    assert "cannot write" in capsys.readouterr().err


def test_unseeded_shuffled_loader_and_train_mode_layers_are_warned():
    from torch.utils.data import DataLoader, TensorDataset

    from deepeft.bayes import sample
    from deepeft.bayes._data import ReproducibilityWarning

    model, X, y = blr(n=64)
    kw = dict(lr=1e-4, num_chains=2, num_draws=5, num_burnin_steps=0, seed=0)
    with pytest.warns(ReproducibilityWarning, match="generator"):
        sample(model, DataLoader(TensorDataset(X, y), batch_size=16, shuffle=True), "gaussian_nll", **kw)
    seeded = DataLoader(TensorDataset(X, y), batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ReproducibilityWarning)
        sample(model, seeded, "gaussian_nll", **kw)
    net = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.1), nn.Linear(4, 1)).double()
    with pytest.warns(UserWarning, match="eval mode"):
        sample(net, (X, y), "gaussian_nll", **kw)
    net.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        sample(net, (X, y), "gaussian_nll", **kw)
