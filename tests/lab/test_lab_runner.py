"""The lab runner: store, resume, outputs; the CLI ('deepeft lab list|run')."""
import json

import numpy as np
import pytest

from deepeft.cli import main
from deepeft.core.errors import ParameterError
from deepeft.lab import _runner, get_problem, list_problems


def _toy(calls):
    def compute(cfg):
        calls.append(cfg["k"])
        return {"x": np.arange(cfg["k"], dtype=float)}

    def parts(quick):
        return [_runner.Part(f"p{k}", {"k": k}, compute) for k in ((1, 2) if quick else (1, 2, 3))]

    def summarize(results, folder, quick):
        return {"headline": {"total": float(sum(v["x"].sum() for v in results.values()))}, "findings": ["toy"]}

    return _runner.Problem("toy", "Toy", "a toy problem", parts, summarize)


def test_runner_stores_parts_and_skips_them_on_rerun(tmp_path):
    calls = []
    prob = _toy(calls)
    r1 = _runner.run(prob, tmp_path / "out", quick=True)
    assert calls == [1, 2] and r1.computed == ["p1", "p2"] and r1.summary["headline"]["total"] == 1.0
    r2 = _runner.run(prob, tmp_path / "out", quick=False)    # p1, p2 reused; only p3 computed
    assert calls == [1, 2, 3] and r2.skipped == ["p1", "p2"] and r2.computed == ["p3"]
    assert r2.summary["headline"]["total"] == 4.0
    for f in ("toy.json", "toy.html", "study.sqlite"):
        assert (tmp_path / "out" / f).exists()
    js = json.loads((tmp_path / "out" / "toy.json").read_text())
    assert js["headline"]["total"] == 4.0 and set(js["run_time_cpu_s"]["parts"]) == {"p1", "p2", "p3"}


def test_runner_refuses_a_file_as_output_folder(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(ParameterError, match="out"):
        _runner.run(_toy([]), f)


def test_registry():
    names = [p["name"] for p in list_problems()]
    assert names == ["regression", "dln", "lora"]
    with pytest.raises(ParameterError, match="problem"):
        get_problem("grokking")


def test_cli_list_and_quick_run_resumes(tmp_path, capsys):
    assert main(["lab", "list", "--json"]) == 0
    assert {p["name"] for p in json.loads(capsys.readouterr().out)} == {"regression", "dln", "lora"}
    out = tmp_path / "dln"
    assert main(["lab", "run", "dln", "--quick", "--out", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["computed"] == ["prior", "posterior_L3", "sampler_n3_L3"] and not res["skipped"]
    assert all((out / f).exists() for f in ("dln.html", "dln.json", "dln_prior.png", "dln_posterior.png", "dln_sampler.png"))
    h = res["summary"]["headline"]
    assert h["sampler_n3_L3: Gibbs vs exact, max |z| (mean, 2nd moment)"] < 4
    assert h["prior excess kurtosis: exact vs MC, max |z|"] < 4
    assert main(["lab", "run", "dln", "--quick", "--out", str(out), "--json"]) == 0
    res2 = json.loads(capsys.readouterr().out)
    assert res2["computed"] == [] and len(res2["skipped"]) == 3
    assert res2["summary"]["headline"] == h


def test_cli_quick_regression(tmp_path, capsys):
    out = tmp_path / "reg"
    assert main(["lab", "run", "regression", "--quick", "--out", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    h = res["summary"]["headline"]
    assert h["ridgeless MC vs exact finite-p formula: max |z|"] < 4
    assert h["BLR λ̂ (MALA) vs exact: max |z|"] < 4
    assert (out / "regression.html").exists() and len(res["files"]["figures"]) == 4


def test_cli_unknown_problem(capsys):
    assert main(["lab", "run", "nope", "--json"]) == 2
    assert "problem" in json.loads(capsys.readouterr().out)["error"]


def test_cli_quick_lora(tmp_path, capsys):
    import warnings

    out = tmp_path / "lora"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # MALA's short quick chains warn about R-hat
        assert main(["lab", "run", "lora", "--quick", "--out", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    h = res["summary"]["headline"]
    assert h["TI vs Gibbs: max |z|"] < 4
    assert (out / "lora.html").exists() and (out / "lora_lambda.png").exists()
