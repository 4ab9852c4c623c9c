"""The embedded result store: one SQLite file (``study.sqlite``) in the study's output folder.

Layout (schema 2)::

    meta(key TEXT PRIMARY KEY, value TEXT)              schema, study name, study file text, plan, …
    inputs(sha256 TEXT PRIMARY KEY, data BLOB)          the study's input array (.npy bytes)
    points(key TEXT PRIMARY KEY, idx, status, config, version, error, compute_s, host,
           finished_at, meta)                           one row per point
    arrays(point_key, name, data BLOB, crc32,           one row per stored array (.npy bytes,
           PRIMARY KEY (point_key, name))               lossless: dtype, shape and bits kept;
                                                        crc32 of the bytes, verified on load)

``key`` is the sha256 of the point's canonical configuration and the package version
(:func:`deepeft.core.provenance.point_key`).  A point and all its arrays are written in one
transaction, so a process killed at any moment leaves either the whole record or nothing; the
database runs in WAL mode while it is written and is switched back to a self-contained rollback
journal when the writer closes, so a finished store can be read from read-only storage.  Only the
process that drives a study (the Dask client) writes, and it holds an exclusive lock
(``fcntl.flock`` on ``study.lock`` in the same folder) while it does.
Schema-1 stores (no checksums) are migrated when opened for writing (checksums of the bytes as
found) and read as they are otherwise.
"""
from __future__ import annotations

import ast
import io
import json
import os
import socket
import sqlite3
import time
import zlib
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..core.errors import DeepEFTError

STORE_NAME = "study.sqlite"
LOCK_NAME = "study.lock"
SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS inputs (sha256 TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS points (
    key TEXT PRIMARY KEY,
    idx INTEGER,
    status TEXT NOT NULL,
    config TEXT NOT NULL,
    version TEXT NOT NULL,
    error TEXT,
    compute_s REAL,
    host TEXT,
    finished_at REAL,
    meta TEXT
);
CREATE TABLE IF NOT EXISTS arrays (
    point_key TEXT NOT NULL REFERENCES points(key) ON DELETE CASCADE,
    name TEXT NOT NULL,
    data BLOB NOT NULL,
    crc32 INTEGER,
    PRIMARY KEY (point_key, name)
);
"""


class StoreError(DeepEFTError):
    """The store cannot be used as asked; the message says what happened and what to do."""


class StoreLocked(StoreError):
    """Another process is writing this store."""


class StoreFull(StoreError):
    """The disk (or quota) holding the store is full; nothing partial was written."""


class StoreDamaged(StoreError):
    """Stored bytes do not match their checksums, or the SQLite file itself is damaged."""

    def __init__(self, msg: str, points: list[dict] | None = None):
        self.points = points or []  # [{'key', 'idx', 'names'}] of the damaged points
        super().__init__(msg)


def array_to_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(a), allow_pickle=False)
    return buf.getvalue()


def checksum(b: bytes) -> int:
    return zlib.crc32(b)


_HEADERS: dict[bytes, tuple[np.dtype, tuple[int, ...], bool, int]] = {}


def bytes_to_array(b: bytes) -> np.ndarray:
    """The array of ``.npy`` bytes.  Headers are parsed once per distinct header (a study's arrays
    share a few dozen), which is where ``np.load`` spends most of its time on small arrays."""
    mv = memoryview(b)
    if len(b) < 10 or bytes(mv[:6]) != b"\x93NUMPY":
        return np.load(io.BytesIO(b), allow_pickle=False)
    major = b[6]
    if major == 1:
        hlen, start = int.from_bytes(b[8:10], "little"), 10
    else:
        hlen, start = int.from_bytes(b[8:12], "little"), 12
    header = bytes(mv[start:start + hlen])
    parsed = _HEADERS.get(header)
    if parsed is None:
        d = ast.literal_eval(header.decode("latin1"))
        dtype = np.dtype(d["descr"])
        if dtype.hasobject:
            return np.load(io.BytesIO(b), allow_pickle=False)  # refuses, with numpy's message
        parsed = (dtype, tuple(d["shape"]), bool(d["fortran_order"]), start + hlen)
        if len(_HEADERS) < 4096:
            _HEADERS[header] = parsed
    dtype, shape, fortran, offset = parsed
    count = int(np.prod(shape)) if shape else 1
    a = np.frombuffer(b, dtype=dtype, count=count, offset=offset)
    a = a.reshape(shape[::-1]).T if fortran else a.reshape(shape)
    return a.copy()


def resolve_store_path(path: str | os.PathLike) -> Path:
    """The store file for a path that is the store itself, the output folder holding it, or the
    study file (.toml/.yaml/.yml) whose output folder holds it."""
    p = Path(path)
    if p.suffix.lower() in (".toml", ".yaml", ".yml") and p.is_file():
        from .studyfile import load_study_file
        p = load_study_file(p).output_dir()
    if p.is_dir():
        return p / STORE_NAME
    return p


def _writable(p: Path) -> bool:
    """Whether SQLite may create its side files next to ``p`` and write ``p``."""
    return os.access(p.parent, os.W_OK) and os.access(p, os.W_OK)


def _damaged_file(path: Path, exc: BaseException) -> StoreDamaged:
    return StoreDamaged(
        f"{path} is not a readable SQLite store ({exc}): the file is damaged (truncated, overwritten, or a "
        f"bad page).  `deepeft study repair {path.parent}` keeps every record that can still be read, moves the "
        f"damaged file aside and recomputes the rest on the next `deepeft study run`.")


class _Lock:
    """An exclusive ``fcntl.flock`` on ``study.lock`` that says who holds it (pid, host, start)."""

    def __init__(self, folder: Path):
        import fcntl

        self.path = folder / LOCK_NAME
        self.fh = open(self.path, "a+")
        try:
            fcntl.flock(self.fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.fh.seek(0)
            holder = self.fh.read().strip() or "{}"
            self.fh.close()
            try:
                h = json.loads(holder)
                who = (f"process {h.get('pid')} on host {h.get('host')} (started "
                       f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(h.get('started', 0)))})")
            except ValueError:
                who = "another process"
            raise StoreLocked(f"{folder} is being written by {who}: two runs on one output folder would compute "
                              f"the same points twice.  Wait for it to finish (or stop it); a rerun then resumes.") \
                from None
        self.fh.seek(0)
        self.fh.truncate()
        self.fh.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}))
        self.fh.flush()

    def release(self) -> None:
        import fcntl

        if self.fh is not None:
            self.fh.seek(0)
            self.fh.truncate()
            self.fh.flush()
            fcntl.flock(self.fh.fileno(), fcntl.LOCK_UN)
            self.fh.close()
            self.fh = None


class Store:
    """A study's SQLite store.  Use as a context manager or call :meth:`close`.

    Writable stores take the folder's lock (:class:`StoreLocked` names the holder).  Read-only
    stores open ``mode=ro``, or ``immutable=1`` where the folder or file is not writable (an
    archive, a read-only mount), which needs no side files."""

    def __init__(self, path: str | os.PathLike, *, create: bool = True, readonly: bool = False):
        p = Path(path)
        self.conn = None
        self._lock = None
        if create and not readonly:
            if p.suffix != ".sqlite":
                p.mkdir(parents=True, exist_ok=True)
                p = p / STORE_NAME
            else:
                p.parent.mkdir(parents=True, exist_ok=True)
        else:
            p = resolve_store_path(p)
            if not p.exists():
                from ..core.errors import ParameterError
                raise ParameterError("path", str(path), f"a study output folder containing {STORE_NAME}, or that file")
        self.path = p
        self.readonly = readonly
        self.immutable = False
        try:
            if readonly:
                self.immutable = not _writable(p)
                wal = p.with_name(p.name + "-wal")
                if self.immutable and wal.exists() and wal.stat().st_size > 0:
                    import warnings
                    warnings.warn(f"{p} is on read-only storage with an unmerged write-ahead log ({wal.name}): "
                                  "points written last by an interrupted run may be missing from what is read",
                                  RuntimeWarning, stacklevel=2)
                mode = "ro&immutable=1" if self.immutable else "ro"
                self.conn = sqlite3.connect(f"file:{p}?mode={mode}", uri=True, timeout=30.0, isolation_level=None)
                self.conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
                self._arrays_have_crc = "crc32" in self._columns("arrays")
            else:
                self._lock = _Lock(p.parent)
                self.conn = sqlite3.connect(str(p), timeout=30.0, isolation_level=None)
                self.conn.execute("PRAGMA journal_mode=WAL")
                # FULL: each committed point is on disk even across a power cut, not only a SIGKILL.
                self.conn.execute("PRAGMA synchronous=FULL")
                self.conn.execute("PRAGMA foreign_keys=ON")
                self.conn.executescript(_SCHEMA)
                self._migrate()
                self._arrays_have_crc = True
        except sqlite3.DatabaseError as exc:
            self.close()
            if isinstance(exc, sqlite3.OperationalError) and "full" in str(exc):
                raise self._full(exc, "opening the store") from None
            raise _damaged_file(p, exc) from None
        except BaseException:
            self.close()
            raise

    def _columns(self, table: str) -> list[str]:
        return [r[1] for r in self.conn.execute(f"PRAGMA table_info({table})")]

    def _migrate(self) -> None:
        cur = self.get_meta("schema")
        if cur is None:
            self.set_meta("schema", str(SCHEMA_VERSION))
            return
        if int(cur) == SCHEMA_VERSION:
            return
        if int(cur) != 1:
            from ..core.errors import ParameterError
            raise ParameterError("store schema", cur, f"1 or {SCHEMA_VERSION} (this deepeft version)")
        # schema 1 → 2: a checksum column, filled from the bytes as they are now
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            if "crc32" not in self._columns("arrays"):
                c.execute("ALTER TABLE arrays ADD COLUMN crc32 INTEGER")
            rows = c.execute("SELECT rowid, data FROM arrays").fetchall()
            c.executemany("UPDATE arrays SET crc32 = ? WHERE rowid = ?", [(checksum(d), r) for r, d in rows])
            c.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise

    # -- context manager -------------------------------------------------------------------
    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.conn is not None:
            if not self.readonly and not self.conn.in_transaction:
                # a self-contained file (no -wal/-shm needed): readable from read-only storage
                try:
                    self.conn.execute("PRAGMA journal_mode=DELETE")
                except sqlite3.DatabaseError:
                    pass  # another connection still reads it, or the disk is full: stays in WAL mode
            self.conn.close()
            self.conn = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _full(self, exc: BaseException, what: str) -> StoreFull:
        return StoreFull(f"the disk holding {self.path} is full ({exc}) while {what}: nothing partial was "
                         f"written and every point stored before is kept.  Free some space and run the same "
                         f"command again — it resumes where it stopped.")

    # -- meta / inputs ---------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        self._write([("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))], f"writing meta {key}")

    def meta(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT key, value FROM meta").fetchall())

    def put_inputs(self, sha: str, x: np.ndarray) -> None:
        self._write([("INSERT OR IGNORE INTO inputs (sha256, data) VALUES (?, ?)", (sha, array_to_bytes(x)))],
                    "writing the inputs")

    def get_inputs(self, sha: str) -> np.ndarray | None:
        row = self.conn.execute("SELECT data FROM inputs WHERE sha256 = ?", (sha,)).fetchone()
        return None if row is None else bytes_to_array(row[0])

    # -- points ----------------------------------------------------------------------------
    def finished_keys(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT key FROM points WHERE status = 'ok'")}

    def status_counts(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT status, COUNT(*) FROM points GROUP BY status").fetchall())

    def _write(self, statements: list[tuple[str, Any]], what: str) -> None:
        """Run ``statements`` ((sql, args) — args a tuple, or a list of tuples for executemany) in
        one transaction.  On any failure the transaction is rolled back if SQLite has not already
        done so itself (it has, on a full disk), and a full disk raises :class:`StoreFull`."""
        c = self.conn
        try:
            c.execute("BEGIN IMMEDIATE")
            for sql, args in statements:
                if isinstance(args, list):
                    c.executemany(sql, args)
                else:
                    c.execute(sql, args)
            c.execute("COMMIT")
        except BaseException as exc:
            if c.in_transaction:
                try:
                    c.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # the original error is the one to report
            if isinstance(exc, sqlite3.OperationalError) and ("full" in str(exc) or "quota" in str(exc)):
                raise self._full(exc, what) from None
            if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
                raise _damaged_file(self.path, exc) from None
            raise

    def write_point(self, key: str, *, idx: int, config: dict, version: str, arrays: dict[str, np.ndarray],
                    status: str = "ok", error: str | None = None, compute_s: float | None = None,
                    host: str | None = None, meta: dict | None = None) -> None:
        """Write (or replace) one point and all its arrays in a single transaction."""
        from ..core.provenance import canonical_json
        blobs = []
        for name, a in sorted(arrays.items()):
            b = array_to_bytes(a)
            blobs.append((key, name, b, checksum(b)))
        self._write([
            ("DELETE FROM arrays WHERE point_key = ?", (key,)),
            ("DELETE FROM points WHERE key = ?", (key,)),
            ("INSERT INTO points (key, idx, status, config, version, error, compute_s, host, finished_at, meta)"
             " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
             (key, idx, status, canonical_json(config), version, error, compute_s,
              host or socket.gethostname(), time.time(), json.dumps(meta or {}, sort_keys=True))),
            ("INSERT INTO arrays (point_key, name, data, crc32) VALUES (?, ?, ?, ?)", blobs),
        ], f"storing point {idx}")

    def delete_points(self, keys: Iterable[str]) -> int:
        """Remove the records (row and arrays) of ``keys``; returns how many were removed."""
        keys = list(keys)
        if not keys:
            return 0
        n = self.conn.execute(f"SELECT COUNT(*) FROM points WHERE key IN ({','.join('?' * len(keys))})",
                              keys).fetchone()[0]
        args = [(k,) for k in keys]
        self._write([("DELETE FROM arrays WHERE point_key = ?", args), ("DELETE FROM points WHERE key = ?", args)],
                    "deleting points")
        return int(n)

    def drop_unused_inputs(self) -> None:
        """Delete stored input arrays that no point's configuration refers to."""
        used = {json.loads(c).get("inputs_sha256") for (c,) in self.conn.execute("SELECT config FROM points")}
        gone = [(s,) for (s,) in self.conn.execute("SELECT sha256 FROM inputs") if s not in used]
        if gone:
            self._write([("DELETE FROM inputs WHERE sha256 = ?", gone)], "deleting unused inputs")

    def _query(self, sql: str, args: tuple = ()) -> list:
        try:
            return self.conn.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and "no such" not in str(exc):
                raise
            raise _damaged_file(self.path, exc) from None

    def damaged(self, keys: Iterable[str] | None = None) -> list[dict]:
        """Points whose stored array bytes do not match their checksum: [{'key', 'idx', 'names'}]."""
        if not self._arrays_have_crc:
            return []
        want = None if keys is None else set(keys)
        bad: dict[str, list[str]] = {}
        for pk, name, data, crc in self._query("SELECT point_key, name, data, crc32 FROM arrays"):
            if (want is None or pk in want) and crc is not None and checksum(data) != crc:
                bad.setdefault(pk, []).append(name)
        if not bad:
            return []
        idx = dict(self._query("SELECT key, idx FROM points"))
        return [{"key": k, "idx": idx.get(k), "names": sorted(v)} for k, v in sorted(bad.items(),
                key=lambda kv: (idx.get(kv[0]) is None, idx.get(kv[0]) or 0, kv[0]))]

    def records(self, *, arrays: bool = True, status: str | None = None, keys: Iterable[str] | None = None,
                verify: bool = True) -> Iterable[dict[str, Any]]:
        """Yield every point (or those of ``keys``) as a dict: the columns, ``config`` parsed, and
        ``arrays`` {name: array}.  With ``verify`` every array's bytes are checked against their
        checksum first; damage raises :class:`StoreDamaged` naming the points."""
        q = "SELECT key, idx, status, config, version, error, compute_s, host, finished_at, meta FROM points"
        args: tuple = ()
        if status is not None:
            q += " WHERE status = ?"
            args = (status,)
        q += " ORDER BY idx, key"
        rows = self._query(q, args)
        if keys is not None:
            want = set(keys)
            rows = [r for r in rows if r[0] in want]
        wanted = {r[0] for r in rows}
        by_key: dict[str, dict[str, np.ndarray]] = {}
        if arrays:
            crc_col = "crc32" if self._arrays_have_crc else "NULL"
            bad: dict[str, list[str]] = {}
            for pk, name, data, crc in self._query(f"SELECT point_key, name, data, {crc_col} FROM arrays"):
                if pk not in wanted:
                    continue
                if verify and crc is not None and checksum(data) != crc:
                    bad.setdefault(pk, []).append(name)
                    continue
                by_key.setdefault(pk, {})[name] = bytes_to_array(data)
            if bad:
                idx = {r[0]: r[1] for r in rows}
                pts = [{"key": k, "idx": idx.get(k), "names": sorted(v)} for k, v in bad.items()]
                pts.sort(key=lambda d: (d["idx"] is None, d["idx"] or 0))
                listed = "; ".join(f"point {d['idx']} ({d['key'][:12]}…: {', '.join(d['names'][:3])}"
                                   f"{', …' if len(d['names']) > 3 else ''})" for d in pts[:10])
                raise StoreDamaged(
                    f"{self.path}: {len(pts)} point(s) have stored arrays whose bytes no longer match their "
                    f"checksum (disk or copy damage): {listed}{' …' if len(pts) > 10 else ''}.  "
                    f"`deepeft study repair {self.path.parent}` recomputes just these and keeps every intact record "
                    f"(an LLC sweep: call llc_sweep again).",
                    pts)
        for key, idx, st, config, version, error, compute_s, host, fin, meta in rows:
            yield {"key": key, "idx": idx, "status": st, "config": json.loads(config), "version": version,
                   "error": error, "compute_s": compute_s, "host": host, "finished_at": fin,
                   "meta": json.loads(meta) if meta else {}, "arrays": by_key.get(key, {})}

    def integrity_check(self) -> str:
        return self.conn.execute("PRAGMA integrity_check").fetchone()[0]
