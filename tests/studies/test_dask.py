"""Points run through a real Dask LocalCluster (2 worker processes) give bit-identical results to
the in-process run, with the real theory and ensemble engines; an existing cluster works too."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import REAL_STUDY
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
