"""A study killed with SIGKILL mid-run resumes to exactly the store an uninterrupted run writes."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np

from conftest import SYNTH_STUDY
from deepeft.studies import Store, load_study, run_study
from deepeft.studies.points import synthetic_point

WORK = {"work_s": 0.04}  # busy-wait per synthetic point, so the kill lands mid-study

RUNNER = textwrap.dedent("""
    import sys
    from deepeft.studies import run_study
    from deepeft.studies.points import synthetic_point
    run_study(sys.argv[1], sys.argv[2], point_fn=synthetic_point, extra_config={"work_s": 0.04}, progress=False)
""")


def _ok_count(db) -> int:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("SELECT COUNT(*) FROM points WHERE status='ok'").fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError:
        return 0


def _snapshot(out) -> dict:
    with Store(out, create=False, readonly=True) as st:
        assert st.integrity_check() == "ok"
        n_rows = st.conn.execute("SELECT COUNT(*) FROM points").fetchone()[0]
        n_arr = st.conn.execute("SELECT COUNT(*) FROM arrays").fetchone()[0]
        n_arr_distinct = st.conn.execute("SELECT COUNT(DISTINCT point_key || '|' || name) FROM arrays").fetchone()[0]
        orphans = st.conn.execute("SELECT COUNT(*) FROM arrays WHERE point_key NOT IN (SELECT key FROM points)").fetchone()[0]
        assert n_arr == n_arr_distinct and orphans == 0
        recs = {r["key"]: r for r in st.records()}
        assert len(recs) == n_rows
        return recs


def test_sigkill_then_resume_matches_uninterrupted_run(study_file, tmp_path):
    path = study_file(SYNTH_STUDY)
    n_points = 2 * 4 * 3 * 2

    ref = tmp_path / "ref"
    s = run_study(path, ref, point_fn=synthetic_point, extra_config=WORK, progress=False)
    assert s.computed == n_points and s.failed == 0

    out = tmp_path / "killed"
    db = out / "study.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", RUNNER, str(path), str(out)])
    try:
        deadline = time.monotonic() + 60
        while _ok_count(db) < 8:
            assert proc.poll() is None, "runner finished before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    partial = _snapshot(out)
    assert 8 <= len(partial) < n_points
    for r in partial.values():  # every record present is complete
        assert r["status"] == "ok" and len(r["arrays"]) == 12

    s2 = run_study(path, out, point_fn=synthetic_point, extra_config=WORK, progress=False)
    assert s2.skipped == len(partial) and s2.computed == n_points - len(partial)
    s3 = run_study(path, out, point_fn=synthetic_point, extra_config=WORK, progress=False)
    assert s3.computed == 0 and s3.skipped == n_points

    a, b = _snapshot(out), _snapshot(ref)
    assert set(a) == set(b) and len(a) == n_points
    for k in a:
        assert a[k]["config"] == b[k]["config"] and a[k]["idx"] == b[k]["idx"]
        assert set(a[k]["arrays"]) == set(b[k]["arrays"])
        for name, arr in a[k]["arrays"].items():
            ref_arr = b[k]["arrays"][name]
            assert arr.dtype == ref_arr.dtype and arr.shape == ref_arr.shape
            assert arr.tobytes() == ref_arr.tobytes()
    df = load_study(out)
    assert len(df) == n_points and df["key"].is_unique


def test_sigint_keeps_finished_points(study_file, tmp_path):
    path = study_file(SYNTH_STUDY)
    out = tmp_path / "int"
    db = out / "study.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", RUNNER, str(path), str(out)], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while _ok_count(db) < 4:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    proc.wait(30)
    assert proc.returncode != 0
    recs = _snapshot(out)
    assert len(recs) >= 4
    s = run_study(path, out, point_fn=synthetic_point, extra_config=WORK, progress=False)
    assert s.skipped == len(recs)
    assert np.all(load_study(out)["status"] == "ok")
