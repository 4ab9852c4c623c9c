"""Points run through a real Dask LocalCluster (2 worker processes) give bit-identical results to
the in-process run, with the real theory and ensemble engines; an existing cluster works too."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import REAL_STUDY, SYNTH_STUDY
from deepeft.studies import load_study, run_study


def _arrays(df):
    out = {}
    for _, row in df.iterrows():
        out[row["key"]] = {c: row[c] for c in df.columns if "/" in c and isinstance(row[c], np.ndarray)}
    return out


@pytest.mark.timeout(240)
def test_localcluster_matches_in_process(study_file, tmp_path):
    path = study_file(REAL_STUDY)
    s_in = run_study(path, tmp_path / "inproc", progress=False)
    assert s_in.failed == 0 and s_in.computed == 5
    s_lc = run_study(path, tmp_path / "lc", workers=2, progress=False)
    assert s_lc.failed == 0 and s_lc.computed == 5 and "LocalCluster(2" in s_lc.mode

    a, b = _arrays(load_study(tmp_path / "inproc")), _arrays(load_study(tmp_path / "lc"))
    assert set(a) == set(b) and len(a) == 5
    for k in a:
        assert set(a[k]) == set(b[k]) and {"theory/kernel", "measured/V_norm", "z/Theta"} <= set(a[k])
        for name in a[k]:
            assert np.array_equal(a[k][name], b[k][name], equal_nan=True), name
    assert (load_study(tmp_path / "lc")["compute_s"] > 0).all()


@pytest.mark.timeout(240)
def test_existing_scheduler(study_file, tmp_path):
    from distributed import LocalCluster

    path = study_file(REAL_STUDY)
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None, processes=True) as cluster:
        s = run_study(path, tmp_path / "sched", scheduler=cluster.scheduler_address, progress=False)
    assert s.computed == 5 and s.failed == 0 and s.mode.startswith("scheduler ")
    ref = run_study(path, tmp_path / "ref", threads=2, progress=False)
    assert ref.computed == 5
    a, b = _arrays(load_study(tmp_path / "sched")), _arrays(load_study(tmp_path / "ref"))
    for k in a:
        for name in a[k]:
            assert np.array_equal(a[k][name], b[k][name], equal_nan=True), name


# Realistic inputs: 8-dimensional (a deserialised 8-column array on a worker is not 8-byte aligned)
STUDY_8D = REAL_STUDY.replace("input_dim = 4", "input_dim = 8").replace("n_inputs = 2", "n_inputs = 3")


def _bits(out):
    from deepeft.studies import Store
    with Store(out, create=False, readonly=True) as st:
        return {r["key"]: {n: (a.dtype.str, a.shape, a.tobytes()) for n, a in r["arrays"].items()}
                for r in st.records()}


@pytest.mark.timeout(400)
def test_eight_dim_inputs_bit_identical_in_process_local_cluster_and_scheduler(study_file, tmp_path):
    from distributed import LocalCluster

    path = study_file(STUDY_8D)
    assert run_study(path, tmp_path / "inproc", progress=False).computed == 5
    assert run_study(path, tmp_path / "lc", workers=2, progress=False).computed == 5
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None, processes=True) as cluster:
        s = run_study(path, tmp_path / "sched", scheduler=cluster.scheduler_address, progress=False)
    assert s.computed == 5 and s.failed == 0
    ref = _bits(tmp_path / "inproc")
    assert len(ref) == 5 and all(len(v) > 20 for v in ref.values())
    for other in ("lc", "sched"):
        got = _bits(tmp_path / other)
        diff = [(k[:8], n) for k in ref for n in ref[k] if got[k][n] != ref[k][n]]
        assert diff == [], f"{other}: {len(diff)} arrays differ from the in-process run"


@pytest.mark.timeout(300)
def test_point_that_kills_its_worker_is_stored_as_failed(study_file, tmp_path):
    import os
    import signal

    from deepeft.studies.points import synthetic_point

    def deadly(config, inputs):  # pickled by value: the workers need not import this test
        if config["seed"] == 1 and config["width"] == 8 and config["depth"] == 3:
            os._exit(3)  # a crash (segfault, abort) ends the process without a word
        if config["seed"] == 1 and config["width"] == 16 and config["depth"] == 3:
            os.kill(os.getpid(), signal.SIGKILL)  # the out-of-memory killer
        return synthetic_point(config, inputs)

    path = study_file(SYNTH_STUDY.replace("depth = [3, 6, 9]", "depth = [3]"))
    s = run_study(path, tmp_path / "o", point_fn=deadly, workers=2, retries=1, progress=False)
    assert s.total == 16 and s.computed == 16 and s.failed == 4 and s.retried >= 4
    df = load_study(tmp_path / "o")
    bad = df[df["status"] == "failed"]
    assert sorted(bad["width"]) == [8, 8, 16, 16] and set(bad["seed"]) == {1}  # tanh and relu
    assert all("worker died" in e and "lost 2 time(s)" in e for e in bad["error"])
    assert (df[df["status"] == "ok"].shape[0]) == 12
    s2 = run_study(path, tmp_path / "o", point_fn=deadly, workers=2, retries=0, progress=False)
    assert s2.skipped == 12 and s2.computed == 4 and s2.failed == 4  # a rerun retries them, and finishes
