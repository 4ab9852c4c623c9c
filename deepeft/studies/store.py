"""The embedded result store: one SQLite file (``study.sqlite``) in the study's output folder.

Layout (schema 1)::

    meta(key TEXT PRIMARY KEY, value TEXT)              schema, study name, study file text, …
    inputs(sha256 TEXT PRIMARY KEY, data BLOB)          the study's input array (.npy bytes)
    points(key TEXT PRIMARY KEY, idx, status, config, version, error, compute_s, host,
           finished_at, meta)                           one row per point
    arrays(point_key, name, data BLOB,                  one row per stored array (.npy bytes,
           PRIMARY KEY (point_key, name))               lossless: dtype, shape and bits kept)

``key`` is the sha256 of the point's canonical configuration and the package version
(:func:`deepeft.core.provenance.point_key`).  A point and all its arrays are written in one
transaction, so a process killed at any moment leaves either the whole record or nothing; the
database runs in WAL mode.  Only the process that drives a study (the Dask client) writes.
"""
from __future__ import annotations

import io
import json
import os
import socket
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np

STORE_NAME = "study.sqlite"
SCHEMA_VERSION = 1

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
    PRIMARY KEY (point_key, name)
);
"""


def array_to_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(a), allow_pickle=False)
    return buf.getvalue()


def bytes_to_array(b: bytes) -> np.ndarray:
    return np.load(io.BytesIO(b), allow_pickle=False)


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


class Store:
    """A study's SQLite store.  Use as a context manager or call :meth:`close`."""

    def __init__(self, path: str | os.PathLike, *, create: bool = True, readonly: bool = False):
        p = Path(path)
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
        if readonly:
            self.conn = sqlite3.connect(f"file:{p}?mode=ro", uri=True, timeout=30.0, isolation_level=None)
        else:
            self.conn = sqlite3.connect(str(p), timeout=30.0, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            # FULL: each committed point is on disk even across a power cut, not only a SIGKILL.
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self.conn.executescript(_SCHEMA)
            cur = self.get_meta("schema")
            if cur is None:
                self.set_meta("schema", str(SCHEMA_VERSION))
            elif int(cur) != SCHEMA_VERSION:
                from ..core.errors import ParameterError
                raise ParameterError("store schema", cur, f"{SCHEMA_VERSION} (this deepeft version)")

    # -- context manager -------------------------------------------------------------------
    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    # -- meta / inputs ---------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def meta(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT key, value FROM meta").fetchall())

    def put_inputs(self, sha: str, x: np.ndarray) -> None:
        self.conn.execute("INSERT OR IGNORE INTO inputs (sha256, data) VALUES (?, ?)", (sha, array_to_bytes(x)))

    def get_inputs(self, sha: str) -> np.ndarray | None:
        row = self.conn.execute("SELECT data FROM inputs WHERE sha256 = ?", (sha,)).fetchone()
        return None if row is None else bytes_to_array(row[0])

    # -- points ----------------------------------------------------------------------------
    def finished_keys(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT key FROM points WHERE status = 'ok'")}

    def status_counts(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT status, COUNT(*) FROM points GROUP BY status").fetchall())

    def write_point(self, key: str, *, idx: int, config: dict, version: str, arrays: dict[str, np.ndarray],
                    status: str = "ok", error: str | None = None, compute_s: float | None = None,
                    host: str | None = None, meta: dict | None = None) -> None:
        """Write (or replace) one point and all its arrays in a single transaction."""
        blobs = [(key, name, array_to_bytes(a)) for name, a in sorted(arrays.items())]
        from ..core.provenance import canonical_json
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            c.execute("DELETE FROM arrays WHERE point_key = ?", (key,))
            c.execute("DELETE FROM points WHERE key = ?", (key,))
            c.execute(
                "INSERT INTO points (key, idx, status, config, version, error, compute_s, host, finished_at, meta)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key, idx, status, canonical_json(config), version, error, compute_s,
                 host or socket.gethostname(), time.time(), json.dumps(meta or {}, sort_keys=True)))
            c.executemany("INSERT INTO arrays (point_key, name, data) VALUES (?, ?, ?)", blobs)
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def records(self, *, arrays: bool = True, status: str | None = None) -> Iterable[dict[str, Any]]:
        """Yield every point as a dict: the columns, ``config`` parsed, and ``arrays`` {name: array}."""
        q = "SELECT key, idx, status, config, version, error, compute_s, host, finished_at, meta FROM points"
        args: tuple = ()
        if status is not None:
            q += " WHERE status = ?"
            args = (status,)
        q += " ORDER BY idx, key"
        rows = self.conn.execute(q, args).fetchall()
        by_key: dict[str, dict[str, np.ndarray]] = {}
        if arrays:
            for pk, name, data in self.conn.execute("SELECT point_key, name, data FROM arrays"):
                by_key.setdefault(pk, {})[name] = bytes_to_array(data)
        for key, idx, st, config, version, error, compute_s, host, fin, meta in rows:
            yield {"key": key, "idx": idx, "status": st, "config": json.loads(config), "version": version,
                   "error": error, "compute_s": compute_s, "host": host, "finished_at": fin,
                   "meta": json.loads(meta) if meta else {}, "arrays": by_key.get(key, {})}

    def integrity_check(self) -> str:
        return self.conn.execute("PRAGMA integrity_check").fetchone()[0]
