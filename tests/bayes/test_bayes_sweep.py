"""llc_sweep: λ̂ of many models into the embedded store, resumable, in-process or on Dask."""
import json

import numpy as np
import pytest
import torch
from torch import nn

from deepeft.bayes import estimate_llc, llc_sweep, load_llc_sweep
from deepeft.core.errors import ParameterError

KW = dict(lr=1e-3, localization=10.0, num_chains=2, num_draws=40, batch_size=50, seed=1)


def _models(k=3):
    out = []
    for s in range(k):
        torch.manual_seed(s)
        out.append(nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)))
    return out


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 3, generator=g)
    return x, torch.sin(x[:, :1])


def test_sweep_equals_estimate_llc_and_resumes(tmp_path):
    models, data = _models(), _data()
    df = llc_sweep(models, data, "mse", out=tmp_path / "sw", progress=False, **KW)
    assert list(df["status"]) == ["ok"] * 3 and list(df["index"]) == [0, 1, 2]
    for i, m in enumerate(models):  # the same computation as a direct call
        assert df["llc_mean"][i] == estimate_llc(m, data, "mse", **KW).llc_mean
    assert np.all(df["llc_se"] > 0) and np.all(np.isfinite(df["rhat"]))
    assert not any((tmp_path / "sw" / "checkpoints").iterdir())  # stored points keep no sampler state
    # a rerun computes nothing: every point is read back from the store (compute_s unchanged)
    again = llc_sweep(models, data, "mse", out=tmp_path / "sw", progress=False, **KW)
    assert list(again["compute_s"]) == list(df["compute_s"]) and list(again["llc_mean"]) == list(df["llc_mean"])
    # a new model (or new settings) computes only what is missing; reordering reuses stored points
    more = llc_sweep([models[2], models[0], *_models(4)[3:]], data, "mse", out=tmp_path / "sw", progress=False,
                     labels=["c", "a", "d"], **KW)
    assert more["llc_mean"][0] == df["llc_mean"][2] and more["compute_s"][1] == df["compute_s"][0]
    assert list(more["label"]) == ["c", "a", "d"] and len(load_llc_sweep(tmp_path / "sw")) == 4


def test_sweep_records_a_failed_model_and_goes_on(tmp_path):
    models, data = _models(2), _data()
    bad = tmp_path / "bad.pt"
    torch.save({"not": "a model"}, bad)
    df = llc_sweep([models[0], bad, models[1]], data, "mse", out=tmp_path / "sw", progress=False, **KW)
    assert list(df["status"]) == ["ok", "failed", "ok"] and "dict" in df["error"][1]


def test_sweep_bad_input(tmp_path):
    models, data = _models(1), _data()
    with pytest.raises(ParameterError, match="loss_fn"):
        llc_sweep(models, data, lambda o, t: o.mean(), out=tmp_path / "a", **KW)
    with pytest.raises(ParameterError, match="models"):
        llc_sweep([], data, "mse", out=tmp_path / "a", **KW)
    with pytest.raises(ParameterError, match="labels"):
        llc_sweep(models, data, "mse", out=tmp_path / "a", labels=["x", "y"], **KW)
    with pytest.raises(ParameterError, match="center"):
        llc_sweep(models, data, "mse", out=tmp_path / "a", center=torch.zeros(21), **KW)
    with pytest.raises(ParameterError, match="models\\[0\\]"):
        llc_sweep([tmp_path / "missing.pt"], data, "mse", out=tmp_path / "a", **KW)
    with pytest.raises(ParameterError, match="checkpoint"):
        llc_sweep(models, data, "mse", out=tmp_path / "a", checkpoint="x.ckpt", **KW)


def test_sweep_cli(tmp_path, capsys):
    from deepeft.cli import main

    x, y = _data()
    torch.save({"x": x, "y": y}, tmp_path / "d.pt")
    paths = []
    for i, m in enumerate(_models(2)):
        paths.append(str(tmp_path / f"ck{i}.pt"))
        torch.save(m, paths[-1])
    cmd = ["bayes", "llc-sweep", *paths, "--data", str(tmp_path / "d.pt"), "--lr", "1e-3", "--localization", "10",
           "--chains", "2", "--draws", "40", "--batch-size", "50", "--seed", "1", "--out-dir", str(tmp_path / "sw"),
           "--plot", str(tmp_path / "sw.png"), "--json"]
    assert main(cmd) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [m["label"] for m in r["models"]] == ["ck0", "ck1"] and (tmp_path / "sw.png").exists()
    assert r["models"][0]["llc_mean"] == pytest.approx(
        estimate_llc(torch.load(paths[0], weights_only=False), (x, y), "mse", **KW).llc_mean, rel=1e-12)
    assert main([*cmd[:-1], "--lr", "auto", "--json"]) == 2


def test_sweep_on_a_local_dask_cluster(tmp_path):
    # the same points computed by Dask worker processes give the same numbers as in-process
    models, data = _models(2), _data()
    local = llc_sweep(models, data, "mse", out=tmp_path / "a", progress=False, **KW)
    dask = llc_sweep(models, data, "mse", out=tmp_path / "b", progress=False, workers=2, **KW)
    assert list(dask["status"]) == ["ok", "ok"] and list(dask["llc_mean"]) == list(local["llc_mean"])


def test_interrupted_sweep_resumes_the_point_where_it_stopped(tmp_path, monkeypatch):
    # Ctrl-C in the middle of the second model: the first is stored, the second's sampler state is
    # checkpointed; the rerun finishes it from there and every number equals an uninterrupted sweep
    import signal

    models, data = _models(2), _data()
    ref = llc_sweep(models, data, "mse", out=tmp_path / "ref", progress=False, **KW)
    steps_per_model = int(KW["num_draws"]) + 300  # auto burn-in 3/(lr·γ) = 300 (< 10× the draws' span)
    calls = {"n": 0}
    normal = torch.Tensor.normal_

    def noisy(self, *a, **k):  # the SGLD noise draw: one per step
        calls["n"] += 1
        if calls["n"] == steps_per_model + 120:
            signal.raise_signal(signal.SIGINT)
        return normal(self, *a, **k)

    monkeypatch.setattr(torch.Tensor, "normal_", noisy)
    with pytest.raises(KeyboardInterrupt):
        llc_sweep(models, data, "mse", out=tmp_path / "sw", progress=False, checkpoint_every=50, **KW)
    assert len(load_llc_sweep(tmp_path / "sw")) == 1 and len(list((tmp_path / "sw" / "checkpoints").iterdir())) == 1
    first = load_llc_sweep(tmp_path / "sw")["compute_s"][0]
    calls["n"] = -10 ** 9  # count the rerun's noise draws, no interrupt
    done = llc_sweep(models, data, "mse", out=tmp_path / "sw", progress=False, checkpoint_every=50, **KW)
    resumed_steps = calls["n"] + 10 ** 9
    monkeypatch.setattr(torch.Tensor, "normal_", normal)
    assert list(done["llc_mean"]) == list(ref["llc_mean"]) and list(done["status"]) == ["ok", "ok"]
    assert done["compute_s"][0] == first                                 # the stored point was not recomputed
    assert resumed_steps == steps_per_model - 120                        # the second resumed at step 120
    assert not any((tmp_path / "sw" / "checkpoints").iterdir())


def test_sweep_points_depend_on_the_sampler_code():
    # stored λ̂ and sampler checkpoints carry the version of deepeft.core + deepeft.bayes, not only of the
    # theory/ensemble engine that keys study points
    from deepeft.core.provenance import BAYES_PACKAGES, engine_digest, result_version

    assert result_version(BAYES_PACKAGES) != result_version()
    assert engine_digest(BAYES_PACKAGES) == engine_digest(("core", "bayes"))
