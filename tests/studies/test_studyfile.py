"""Study files are validated before anything runs, with errors naming the key and what is allowed."""
from __future__ import annotations

import subprocess
import sys

import pytest

from deepeft.core.errors import ParameterError
from deepeft.studies import load_study_file, parse_study, plan

GOOD = """
[study]
name = "ok"
[inputs]
n_inputs = 3
input_dim = 5
[grid]
activation = ["tanh", "relu"]
width = [8, 16, 32]
depth = [2, 4]
C_b = "critical"
C_W = "critical"
[[points]]
activation = "erf"
width = 8
depth = 3
C_b = 0.2
C_W = 1.4
"""


def test_good_file_expands_grid_and_points(study_file):
    st = load_study_file(study_file(GOOD))
    assert st.name == "ok"
    pts = plan(st)
    assert len(pts) == 2 * 3 * 2 + 1
    assert len({k for _, k, _ in pts}) == len(pts)
    relu = [c for _, _, c in pts if c["activation"] == "relu"][0]
    assert relu["init"] == "critical" and relu["C_W"] == pytest.approx(2.0) and relu["C_b"] == 0.0
    erf = [c for _, _, c in pts if c["activation"] == "erf"][0]
    assert erf["C_W"] == 1.4 and erf["spec"]["widths"] == [8, 8]
    # keys are stable across loads
    assert [k for _, k, _ in plan(load_study_file(study_file(GOOD)))] == [k for _, k, _ in pts]


@pytest.mark.parametrize("body, name, words", [
    ("[grid]\nactivation=['tanh']\nwidth=[8]\ndepth=[2]\nwidht=[3]\n", "grid.widht", ["width", "depth", "unknown key"]),
    ("[gird]\nactivation='tanh'\n", "gird", ["sections", "grid", "unknown section"]),
    ("[grid]\nactivation=['tanh']\nwidth=[]\ndepth=[2]\n", "grid.width", ["non-empty list", "empty grid axis"]),
    ("[grid]\n", "grid", ["at least one key"]),
    ("[grid]\nactivation=['tanh']\nwidth=['wide']\ndepth=[2]\n", "grid.width", ["integer"]),
    ("[grid]\nactivation=['tanh']\nwidth=[8]\ndepth=[2.5]\n", "grid.depth", ["integer"]),
    ("[grid]\nactivation=['tanhh']\nwidth=[8]\ndepth=[2]\n", "grid.activation", ["tanh", "relu"]),
    ("[grid]\nactivation=['tanh']\nwidth=[8]\ndepth=[2]\nC_W=[-1.0]\nC_b=0.0\n", "grid.C_W", ["> 0", "critical"]),
    ("[grid]\nactivation=['tanh']\nwidth=[8]\ndepth=[2]\nensemble=1\n", "grid.ensemble", [">= 2"]),
    ("[grid]\nactivation=['tanh']\nwidth=[8]\ndepth=[2]\n[run]\nobservables=['kernal']\n", "run.observables",
     ["kernel", "V_norm"]),
    ("[grid]\nactivation=['tanh']\nwidth=[8]\ndepth=[2]\n[run]\norder='2/n'\n", "run.order", ["1/n", "infinite"]),
    ("[grid]\nactivation=['tanh']\nwidth=[8]\ndepth=[2]\n[inputs]\nn_inputs=0\n", "inputs.n_inputs", [">= 1"]),
    ("[grid]\nactivation=['tanh']\nwidth=[8]\ndepth=[2]\n[inputs]\nfile='missing.npy'\n", "inputs.file",
     ["existing"]),
    ("[study]\nname='x'\n", "grid/points", ["at least one point"]),
    ("[grid]\nwidth=[8]\ndepth=[2]\n", "activation", ["activation name", "point 0"]),
    ("[[points]]\nactivation='tanh'\nwidth=8\ndepth=2\nC_b=0.0\n", "C_b/C_W", ["both 'critical'"]),
    ("[[points]]\nactivation='tanh'\nwidth=[8, 8]\ndepth=2\n", "width", ["depth-1"]),
    ("[grid]\nactivation='tanh'\nwidth=8\ndepth=2\n[run]\nchunk_size='big'\n", "run.chunk_size", ["integer"]),
    ("[grid\nactivation='tanh'\n", "study file", ["valid TOML"]),
])
def test_malformed_files(study_file, body, name, words):
    with pytest.raises(ParameterError) as ei:
        plan(load_study_file(study_file(body)))
    msg = str(ei.value)
    assert name in msg, msg
    for w in words:
        assert w in msg, (w, msg)


def test_yaml_and_extension_errors(study_file):
    yaml = pytest.importorskip("yaml")  # noqa: F841
    st = load_study_file(study_file("grid:\n  activation: [tanh]\n  width: [8]\n  depth: [2]\n"
                                    "  C_b: 0.0\n  C_W: [1.0, 1.5]\n", name="s.yaml"))
    assert len(plan(st)) == 2
    with pytest.raises(ParameterError, match="widths"):
        load_study_file(study_file("grid:\n  widths: [8]\n", name="t.yml"))
    with pytest.raises(ParameterError, match=r"\.toml"):
        load_study_file(study_file("x", name="s.json"))


def test_parse_dict_and_inputs_file(tmp_path):
    import numpy as np
    x = np.random.default_rng(0).standard_normal((3, 4))
    np.save(tmp_path / "x.npy", x)
    st = parse_study({"grid": {"activation": "relu", "width": 8, "depth": 3},
                      "inputs": {"file": "x.npy"}}, base_dir=tmp_path)
    assert np.array_equal(st.input_array(), x)
    cfg = plan(st)[0][2]
    assert cfg["n_inputs"] == 3 and cfg["input_dim"] == 4


def test_cli_reports_validation_error_before_running(study_file, tmp_path):
    p = study_file("[grid]\nactivation=['tanh']\nwidth=[8]\ndepth=[2]\nbogus=1\n")
    r = subprocess.run([sys.executable, "-c", "import sys; from deepeft.cli import main; sys.exit(main())", "study", "run", str(p), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert "grid.bogus" in r.stderr and "allowed keys: activation" in r.stderr
    assert not (tmp_path / "o").exists()
