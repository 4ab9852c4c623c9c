"""The store and runner survive what a demanding user meets: a full disk, read-only storage, a kill
while the report is written, silent corruption (a flipped byte, a damaged file), edited study
files, two runs on one folder, and no network ports for in-process runs (issue 12)."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import SYNTH_STUDY, write_study
from deepeft.cli import main as cli_main
from deepeft.studies import Store, load_study, run_study
from deepeft.studies import store as store_mod
from deepeft.studies.points import aligned_copy, execute_point, synthetic_point
from deepeft.studies.runner import prune_study, repair_study
from deepeft.studies.store import StoreDamaged, StoreFull, StoreLocked

N_SYNTH = 2 * 4 * 3 * 2


def _bits(out, **kw) -> dict:
    """{key: {name: (dtype, shape, bytes)}} of every point loaded from ``out``."""
    with Store(out, create=False, readonly=True) as st:
        return {r["key"]: {n: (a.dtype.str, a.shape, a.tobytes()) for n, a in r["arrays"].items()}
                | {"_status": r["status"], "_idx": r["idx"]} for r in st.records(**kw)}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    d = tmp_path_factory.mktemp("ref")
    path = write_study(d, SYNTH_STUDY)
    s = run_study(path, d / "out", point_fn=synthetic_point, progress=False)
    assert s.computed == N_SYNTH
    return path, d / "out", _bits(d / "out")


# -- 1. aligned inputs ----------------------------------------------------------------------
def test_points_get_aligned_inputs():
    raw = np.frombuffer(b"\0" + np.arange(24.0).tobytes(), dtype=np.float64, count=24, offset=1).reshape(3, 8)
    assert raw.ctypes.data % 8 != 0  # as a deserialised array on a Dask worker can be
    seen = {}

    def fn(config, x):
        seen["addr"], seen["x"] = x.ctypes.data, x.copy()
        return {"a": x.sum(axis=0)}

    res = execute_point(fn, {}, raw)
    assert res["status"] == "ok" and seen["addr"] % 64 == 0 and np.array_equal(seen["x"], raw)
    a = aligned_copy(raw)
    assert a.flags.c_contiguous and a.flags.writeable and a.ctypes.data % 64 == 0
    assert aligned_copy(None) is None and aligned_copy(np.float64(2.0)) == 2.0


# -- 3. disk full ---------------------------------------------------------------------------
class _FullDisk:
    """A connection that fails like SQLITE_FULL on the arrays insert of the ``after``-th point."""

    def __init__(self, conn, after: int, sqlite_rolled_back: bool):
        self._c, self._n, self._after, self._rb = conn, 0, after, sqlite_rolled_back

    def __getattr__(self, name):
        return getattr(self._c, name)

    def executemany(self, sql, args):
        if sql.startswith("INSERT INTO arrays"):
            self._n += 1
            if self._n >= self._after:
                if self._rb:  # SQLite rolls a transaction back itself on a full disk
                    self._c.execute("ROLLBACK")
                raise sqlite3.OperationalError("database or disk is full")
        return self._c.executemany(sql, args)


@pytest.mark.parametrize("sqlite_rolled_back", [True, False])
def test_disk_full_gives_one_clear_error_and_resume_completes(reference, tmp_path, monkeypatch, sqlite_rolled_back):
    path, _, ref = reference
    real_connect = sqlite3.connect

    def connect(*a, **kw):
        return _FullDisk(real_connect(*a, **kw), 7, sqlite_rolled_back)

    monkeypatch.setattr(store_mod.sqlite3, "connect", connect)
    out = tmp_path / "full"
    with pytest.raises(StoreFull) as ei:
        run_study(path, out, point_fn=synthetic_point, progress=False)
    msg = str(ei.value)
    assert "is full" in msg and "resumes" in msg and "rollback" not in msg.lower()
    assert ei.value.__context__ is None or ei.value.__suppress_context__  # no chained traceback
    monkeypatch.setattr(store_mod.sqlite3, "connect", real_connect)
    assert len(_bits(out)) == 6  # every point before the failure is kept, nothing partial
    s = run_study(path, out, point_fn=synthetic_point, progress=False)
    assert s.skipped == 6 and s.computed == N_SYNTH - 6
    assert _bits(out) == ref


def test_disk_full_on_a_real_tiny_tmpfs(reference, tmp_path):
    path, _, ref = reference
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root); the injected SQLITE_FULL test covers this")
    try:
        with pytest.raises(StoreFull, match="is full"):
            run_study(path, mnt / "out", point_fn=synthetic_point, progress=False)
        kept = len(_bits(mnt / "out"))
        assert 0 < kept < N_SYNTH
        subprocess.run(["mount", "-o", "remount,size=8m", str(mnt)], check=True)  # space freed
        s = run_study(path, mnt / "out", point_fn=synthetic_point, progress=False)
        assert s.skipped == kept and s.computed == N_SYNTH - kept
        assert _bits(mnt / "out") == ref
    finally:
        subprocess.run(["umount", "-l", str(mnt)])


# -- 4. read-only storage -------------------------------------------------------------------
def test_finished_store_loads_from_read_only_storage(reference, tmp_path, monkeypatch, capsys):
    """Tests run as root, where chmod does not stop writes: read-only storage is simulated by
    ``os.access`` answering 'not writable' for everything under the store's folder."""
    _, out, ref = reference
    db = out / "study.sqlite"
    assert not db.with_name("study.sqlite-wal").exists()
    assert db.read_bytes()[18:20] == b"\x01\x01"  # rollback journal: no -wal/-shm needed to read
    real_access = os.access
    monkeypatch.setattr(store_mod.os, "access",
                        lambda p, mode, **kw: False if (mode & os.W_OK and str(p).startswith(str(out)))
                        else real_access(p, mode, **kw))
    with Store(out, create=False, readonly=True) as st:
        assert st.immutable
    assert _bits(out) == ref and len(load_study(out)) == N_SYNTH
    assert cli_main(["study", "show", str(out)]) == 0
    assert f"{N_SYNTH} ok" in capsys.readouterr().out
    html = tmp_path / "elsewhere" / "index.html"
    assert cli_main(["study", "report", str(out), "--html", str(html)]) == 0
    assert html.stat().st_size > 1000 and not (out / "report").exists()


# -- 5. atomic report -----------------------------------------------------------------------
def test_kill_while_report_is_written_keeps_previous_report(reference, tmp_path, monkeypatch):
    import shutil

    from deepeft.report import files
    from deepeft.report.study_report import write_report

    out = tmp_path / "o"
    shutil.copytree(reference[1], out)
    page = write_report(out)
    before = {p: p.read_bytes() for p in page.parent.rglob("*") if p.is_file()}
    assert len(before) >= 3
    real_fsync = files.os.fsync

    for target in ("index.html", "phase-diagram.png"):
        def dying_fsync(fd, target=target):
            if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(f".{target}."):
                raise KeyboardInterrupt("killed while writing")  # the bytes are half on disk
            return real_fsync(fd)

        monkeypatch.setattr(files.os, "fsync", dying_fsync)
        with pytest.raises(KeyboardInterrupt):
            write_report(out)
        after = {p: p.read_bytes() for p in page.parent.rglob("*") if p.is_file()}
        assert set(after) == set(before)  # no temporary file left behind
        assert after[page] == before[page] and after[page].rstrip().endswith(b"</html>")
        png = page.parent / "figures" / target
        if png.exists():
            assert after[png] == before[png]


# -- 6. checksums, damaged files, repair ----------------------------------------------------
def _flip_byte(out, idx: int, name: str) -> str:
    con = sqlite3.connect(out / "study.sqlite")
    key = con.execute("SELECT key FROM points WHERE idx = ?", (idx,)).fetchone()[0]
    data = bytearray(con.execute("SELECT data FROM arrays WHERE point_key = ? AND name = ?", (key, name)).fetchone()[0])
    data[-3] ^= 0x10
    con.execute("UPDATE arrays SET data = ? WHERE point_key = ? AND name = ?", (bytes(data), key, name))
    con.commit()
    con.close()
    return key


def test_flipped_byte_detected_and_repaired_by_recomputing_that_point_only(reference, tmp_path, capsys):
    import shutil

    path, ref_out, ref = reference
    out = tmp_path / "o"
    shutil.copytree(ref_out, out)
    key = _flip_byte(out, 5, "measured/kernel")
    fin = {r["key"]: r["finished_at"] for r in Store(out, create=False, readonly=True).records(arrays=False)}
    with pytest.raises(StoreDamaged, match=r"point 5 \(") as ei:
        load_study(out)
    assert [d["key"] for d in ei.value.points] == [key] and "study repair" in str(ei.value)
    assert cli_main(["study", "show", str(out)]) == 0  # no arrays read: still shows
    assert cli_main(["study", "report", str(out), "--html", str(tmp_path / "r.html")]) == 2
    assert "point 5" in capsys.readouterr().err
    with pytest.raises(StoreDamaged, match="recompute-damaged"):
        run_study(path, out, point_fn=synthetic_point, progress=False)
    rep = repair_study(out, point_fn=synthetic_point, progress=False)  # the study text stored with the results
    s = rep["summary"]
    assert s["repaired"] == 1 and s["computed"] == 1 and s["skipped"] == N_SYNTH - 1
    assert _bits(out) == ref
    after = {r["key"]: r["finished_at"] for r in Store(out, create=False, readonly=True).records(arrays=False)}
    assert [k for k in after if after[k] != fin[k]] == [key]  # every intact record kept as it was


@pytest.mark.parametrize("damage", ["garbage header", "truncated"])
def test_damaged_sqlite_file_gives_clear_error_and_repair_salvages(reference, tmp_path, capsys, damage):
    import shutil

    path, ref_out, ref = reference
    out = tmp_path / "o"
    shutil.copytree(ref_out, out)
    db = out / "study.sqlite"
    raw = db.read_bytes()
    db.write_bytes(os.urandom(100) + raw[100:] if damage == "garbage header" else raw[: len(raw) // 2])
    with pytest.raises(StoreDamaged, match="not a readable SQLite store"):
        load_study(out)
    assert cli_main(["study", "show", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("deepeft: error:") and "Traceback" not in err and "study repair" in err
    rep = repair_study(out, path, point_fn=synthetic_point, progress=False)
    assert rep["salvaged_from"] and Path(rep["salvaged_from"]).exists()
    assert rep["summary"]["skipped"] == rep["kept"] and rep["summary"]["computed"] == N_SYNTH - rep["kept"]
    assert _bits(out) == ref


def test_schema_1_store_is_migrated_with_checksums(reference, tmp_path):
    import shutil

    out = tmp_path / "o"
    shutil.copytree(reference[1], out)
    con = sqlite3.connect(out / "study.sqlite")
    con.execute("ALTER TABLE arrays DROP COLUMN crc32")
    con.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
    con.commit()
    con.close()
    assert _bits(out) == reference[2]  # read as it is
    with Store(out) as st:
        assert st.get_meta("schema") == "2" and st.damaged() == []
        assert st.conn.execute("SELECT COUNT(*) FROM arrays WHERE crc32 IS NULL").fetchone()[0] == 0
    _flip_byte(out, 0, "z/kernel")
    with pytest.raises(StoreDamaged):
        load_study(out)


# -- 7. stale records -----------------------------------------------------------------------
def test_edited_study_loads_as_defined_and_prune(reference, tmp_path, monkeypatch, capsys):
    import deepeft.core.provenance as provenance
    import deepeft.studies.runner as runner

    path, _, ref = reference
    out = tmp_path / "o"
    for mod in (runner, provenance):
        monkeypatch.setattr(mod, "result_version", lambda *a: "0.0-older")
    run_study(path, out, point_fn=synthetic_point, progress=False)  # an older code version
    monkeypatch.undo()
    run_study(path, out, point_fn=synthetic_point, progress=False)
    assert len(load_study(out)) == N_SYNTH and len(load_study(out, all_records=True)) == 2 * N_SYNTH
    edited = write_study(tmp_path, SYNTH_STUDY.replace('width = [8, 16, 32, 64]', 'width = [8, 32, 64]'), "edited.toml")
    s = run_study(edited, out, point_fn=synthetic_point, progress=False)
    assert s.total == 36 and s.computed == 0
    df = load_study(out)
    assert len(df) == 36 and df["idx"].is_unique and list(df["idx"]) == list(range(36))
    assert 16 not in set(df["width"])
    from deepeft.report.study_report import write_report
    page = write_report(out).read_text()
    assert "36 ok, 0 failed, 0 pending" in page
    assert cli_main(["study", "show", str(out)]) == 0
    assert "60 stale record(s)" in capsys.readouterr().out
    assert prune_study(out) == 60
    assert len(load_study(out, all_records=True)) == 36
    kept = _bits(out)
    assert len(kept) == 36 and all(kept[k] == ref[k] | {"_idx": kept[k]["_idx"]} for k in kept)


# -- 8. a lock per output folder ------------------------------------------------------------
RUNNER = textwrap.dedent("""
    import sys
    from deepeft.studies import run_study
    from deepeft.studies.points import synthetic_point
    s = run_study(sys.argv[1], sys.argv[2], point_fn=synthetic_point, extra_config={"work_s": 0.15}, progress=False)
    print("computed", s.computed)
""")


def test_two_runs_on_one_folder_compute_each_point_once(tmp_path):
    path = write_study(tmp_path, SYNTH_STUDY)
    out = tmp_path / "o"
    a = subprocess.Popen([sys.executable, "-c", RUNNER, str(path), str(out)], stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (out / "study.sqlite").exists() or not (out / "study.lock").read_text():
            assert a.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        b = subprocess.run([sys.executable, "-c", RUNNER, str(path), str(out)], capture_output=True, text=True,
                           timeout=120)
        assert b.returncode != 0 and "StoreLocked" in b.stderr
        assert f"process {a.pid} on host" in b.stderr and "started" in b.stderr
        assert a.wait(120) == 0
        assert a.stdout.read().strip() == f"computed {N_SYNTH}"
    finally:
        if a.poll() is None:
            a.kill()
    with Store(out, create=False, readonly=True) as st:
        assert st.status_counts() == {"ok": N_SYNTH}
    with Store(out):  # released: the next run may write
        with pytest.raises(StoreLocked, match=f"process {os.getpid()}"):
            Store(out)


# -- 9. no network ports in-process ---------------------------------------------------------
def test_in_process_run_opens_no_port(study_file, tmp_path, monkeypatch):
    import socket

    opened = []
    real_bind = socket.socket.bind

    def bind(self, addr):
        opened.append(addr)
        return real_bind(self, addr)

    monkeypatch.setattr(socket.socket, "bind", bind)
    path = study_file(SYNTH_STUDY)
    s = run_study(path, tmp_path / "o", point_fn=synthetic_point, threads=2, progress=False)
    assert s.computed == N_SYNTH and s.mode == "in-process (2 threads)"
    assert opened == []


@pytest.mark.timeout(120)
def test_local_cluster_binds_localhost_without_dashboard():
    from deepeft.studies.runner import make_client

    client, cluster, mode = make_client(1, None)
    try:
        addrs = [cluster.scheduler_address, *client.scheduler_info()["workers"]]
        assert all(a.startswith("tcp://127.0.0.1:") for a in addrs), addrs
        http = cluster.scheduler.http_server  # distributed always serves a few HTTP routes
        assert http.address == "127.0.0.1" and http.port != 8787
    finally:
        client.close()
        cluster.close()


# -- the LLC sweep shares the store: checksums, the lock, read-only loading ---------------------
def test_llc_sweep_store_has_the_same_guarantees(tmp_path, monkeypatch):
    import torch
    from torch import nn

    from deepeft.bayes import llc_sweep, load_llc_sweep

    models = []
    for s in range(2):
        torch.manual_seed(s)
        models.append(nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(100, 3, generator=g)
    kw = dict(lr=1e-3, localization=10.0, num_chains=2, num_draws=20, batch_size=50, seed=1)
    out = tmp_path / "sw"
    with Store(out):  # another writer holds the folder
        with pytest.raises(StoreLocked, match=f"process {os.getpid()}"):
            llc_sweep(models, (x, torch.sin(x[:, :1])), "mse", out=out, progress=False, **kw)
    df = llc_sweep(models, (x, torch.sin(x[:, :1])), "mse", out=out, progress=False, **kw)
    assert list(df["status"]) == ["ok", "ok"]
    real_access = os.access
    with monkeypatch.context() as m:  # read-only storage, simulated as in the study test above
        m.setattr(store_mod.os, "access", lambda p, mode, **k: False if mode & os.W_OK else real_access(p, mode, **k))
        assert list(load_llc_sweep(out)["llc_mean"]) == list(df["llc_mean"])
    con = sqlite3.connect(out / "study.sqlite")
    key, data = con.execute("SELECT point_key, data FROM arrays WHERE name = 'llc/mean' LIMIT 1").fetchone()
    data = bytearray(data)
    data[-1] ^= 1
    con.execute("UPDATE arrays SET data = ? WHERE point_key = ? AND name = 'llc/mean'", (bytes(data), key))
    con.commit()
    con.close()
    with pytest.raises(StoreDamaged, match="llc/mean"):
        load_llc_sweep(out)
    with pytest.warns(RuntimeWarning, match="recomputing 1 damaged"):
        again = llc_sweep(models, (x, torch.sin(x[:, :1])), "mse", out=out, progress=False, **kw)
    assert list(again["llc_mean"]) == list(df["llc_mean"])  # the damaged point recomputed, bit for bit
