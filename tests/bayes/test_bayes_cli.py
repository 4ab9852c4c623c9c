"""`deepeft llc` and `deepeft bayes …` end to end: saved model and data in, numbers out (JSON)."""
import json

import pytest
import torch
from torch import nn

from deepeft.bayes import aoyagi_dln
from deepeft.cli import main
from bayes_helpers import whitened_inputs


@pytest.fixture()
def saved_dln(tmp_path):
    # [4,3,4] at w* = 0 with whitened inputs (the DLN test setting), float64
    m = nn.Sequential(nn.Linear(4, 3, bias=False), nn.Linear(3, 4, bias=False)).double()
    with torch.no_grad():
        for layer in m:
            layer.weight.zero_()
    x = whitened_inputs(4, 4)
    with torch.no_grad():
        y = m(x)
    mp, dp = tmp_path / "model.pt", tmp_path / "data.pt"
    torch.save(m, mp)
    torch.save({"x": x, "y": y}, dp)
    return str(mp), str(dp)


def _json(capsys):
    out = capsys.readouterr().out.strip().splitlines()
    return json.loads(out[-1])


def test_llc_json_and_extrapolation(saved_dln, capsys, tmp_path):
    m, d = saved_dln
    common = ["--data", d, "--loss", "gaussian_nll", "--nbeta", "1000", "--localization", "1", "--chains", "4",
              "--draws", "60", "--burnin", "200", "--steps-bw-draws", "5", "--seed", "1", "--json", "--no-progress"]
    assert main(["llc", m, "--lr", "5e-5", *common, "--out", str(tmp_path / "r.json")]) == 0
    r = _json(capsys)
    assert r["llc_mean"] > 0 and r["llc_se"] > 0 and len(r["llc_per_chain"]) == 4
    assert json.load(open(tmp_path / "r.json"))["llc_mean"] == r["llc_mean"]
    assert r["diagnostics"]["localization_relaxation_steps"] == pytest.approx(1 / 5e-5)
    assert any("relaxation time" in w for w in r["diagnostics"]["warnings"])  # burn-in 200 ≪ 2·10⁴
    assert main(["llc", m, "--lr", "5e-5", *common, "--extrapolate-lr"]) == 0
    e = _json(capsys)
    ex = e["diagnostics"]["extrapolation"]
    assert e["llc_mean"] == pytest.approx(2 * ex["llc_half_lr"] - ex["llc_lr"])
    assert e["config"]["lr"] == [5e-5, 5e-5, 2.5e-5, 2.5e-5]


def test_llc_gibbs_sampler(saved_dln, capsys):
    # --sampler gibbs on the saved DLN: exact sweeps, the same number as the library call
    from deepeft.bayes import estimate_llc

    m, d = saved_dln
    assert main(["llc", m, "--data", d, "--loss", "gaussian_nll", "--sampler", "gibbs", "--nbeta", "1000",
                 "--localization", "1", "--chains", "4", "--draws", "300", "--burnin", "50", "--seed", "2", "--json",
                 "--no-progress"]) == 0
    r = _json(capsys)
    data = torch.load(d)
    ref = estimate_llc(torch.load(m, weights_only=False), (data["x"], data["y"]), "gaussian_nll", sampler="gibbs",
                       nbeta=1000.0, localization=1.0, num_chains=4, num_draws=300, num_burnin_steps=50, seed=2)
    assert r["llc_mean"] == pytest.approx(ref.llc_mean, rel=1e-12) and r["config"]["sampler"] == "gibbs"
    assert not any("relaxation" in w for w in r["diagnostics"]["warnings"])


def test_llc_bad_input_is_a_clear_error(saved_dln, capsys):
    m, d = saved_dln
    assert main(["llc", m, "--data", d, "--lr", "-1", "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["error"].startswith("lr=")  # with --json the error is JSON too
    assert main(["llc", m, "--data", d, "--chains", "3", "--extrapolate-lr"]) == 2
    assert "num_chains" in capsys.readouterr().err
    assert main(["llc", m, "--data", d, "--burnin", "soon"]) == 2
    assert "--burnin" in capsys.readouterr().err


def test_aoyagi_and_dln_gibbs(capsys):
    assert main(["bayes", "aoyagi", "5", "4", "5", "--json"]) == 0
    a = _json(capsys)
    assert a["lambda"] == 8.0 and a["multiplicity"] == 1
    assert main(["bayes", "dln-gibbs", "5", "4", "5", "--nbeta", "1000", "--sweeps", "400", "--chains", "8", "--json"]) == 0
    g = _json(capsys)
    assert g["aoyagi_lambda"] == float(aoyagi_dln([5, 4, 5])[0])
    # exact finite-nβ value 7.80 (tests/bayes/test_bayes_dln_gibbs.py); 4σ here
    assert abs(g["llc_mean"] - 7.80) < 4 * g["llc_se"] + 0.01
    assert main(["bayes", "dln-gibbs", "5", "4", "5", "--nbeta", "-1"]) == 2
    assert "nbeta" in capsys.readouterr().err


def test_temperature_commands_reject_a_bad_lr(saved_dln, capsys):
    m, d = saved_dln
    for cmd in (["bayes", "wbic", m, "--prior-precision", "1"], ["bayes", "ti", m, "--prior-precision", "1"],
                ["bayes", "beta-sweep", m]):
        assert main([*cmd, "--data", d, "--lr", "abc"]) == 2
        assert "--lr" in capsys.readouterr().err


def test_llc_checkpoint_resume(saved_dln, capsys, tmp_path):
    # --checkpoint: a finished run's state is kept; the same command returns the same numbers
    m, d = saved_dln
    ck = str(tmp_path / "llc.ckpt")
    cmd = ["llc", m, "--data", d, "--loss", "gaussian_nll", "--nbeta", "1000", "--localization", "1", "--lr", "5e-5",
           "--chains", "2", "--draws", "40", "--burnin", "20", "--seed", "3", "--checkpoint", ck,
           "--checkpoint-every", "10", "--json", "--no-progress"]
    assert main(cmd) == 0
    first = _json(capsys)
    assert (tmp_path / "llc.ckpt").exists()
    assert main(cmd) == 0
    assert _json(capsys)["llc_mean"] == first["llc_mean"]
    assert main([*cmd[:-4], "--lr", "1e-4", "--json"]) == 2  # another run's checkpoint: a clear error
    assert "checkpoint" in json.loads(capsys.readouterr().out.strip().splitlines()[-1])["error"]


def test_degrade_with_default_step_size(saved_dln, capsys, tmp_path):
    # the default --lr auto: each temperature's ε from the curvature (a fixed 1e-4 used to fail the stability
    # check on small models); models are saved and their measured Δloss reported
    m, d = saved_dln
    out = tmp_path / "deg"
    assert main(["bayes", "degrade", m, "--data", d, "--loss", "gaussian_nll", "--target-delta-loss", "0.05",
                 "--localization", "1", "--steps", "300", "--num-models", "3", "--seed", "0", "--out-dir", str(out),
                 "--json"]) == 0
    r = _json(capsys)
    assert len(r["paths"]) == 3 and all((out / f"degraded_{i}.pt").exists() for i in range(3))
    assert r["lr"] > 0 and len(r["pilot"]["lr"]) == len(r["pilot"]["nbeta"]) and all(v > 0 for v in r["delta_loss"])
    # at γ = 100 the loss increase saturates near 0.004 on this model: an unreachable target is a clear error
    assert main(["bayes", "degrade", m, "--data", d, "--loss", "gaussian_nll", "--target-delta-loss", "0.05",
                 "--localization", "100", "--steps", "100", "--out-dir", str(out), "--json"]) == 2
    assert "weaker localization" in json.loads(capsys.readouterr().out.strip().splitlines()[-1])["error"]
