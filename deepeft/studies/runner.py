"""Run a study's points and store each as it arrives; the driving process alone writes the store.

Three ways to run (pick one):

- in-process (default): ``threads`` worker threads inside this process — no Dask, no network port;
- ``workers=N``: a ``distributed.LocalCluster`` with N single-threaded worker processes, bound to
  127.0.0.1 and without a dashboard (``cluster_options`` overrides, e.g. ``{"host": "0.0.0.0",
  "dashboard_address": ":8787"}``);
- ``scheduler=ADDRESS``: an existing cluster (``dask scheduler`` + ``dask worker ADDRESS``, or
  dask-jobqueue on SLURM); workers need deepeft installed.

Points already finished in the store are skipped, so re-running a study resumes it.  Each point is
written in one transaction as soon as its result reaches the client; Ctrl-C (or SIGTERM) cancels
the outstanding points and keeps every finished one.  A point whose task is lost (its worker was
killed, crashed or ran out of memory; the task was cancelled) is resubmitted up to ``retries``
times and then stored as failed with the reason, and the study goes on.  Every point gets its
inputs in fresh 64-byte-aligned memory (:func:`~deepeft.studies.points.aligned_copy`), so results
are bit-identical wherever it runs.
"""
from __future__ import annotations

import json
import os
import queue as _queue
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future
from concurrent.futures import wait as _cf_wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


from ..core.errors import ParameterError
from ..core.interrupts import catch_interrupts
from ..core.provenance import point_key, result_version
from .points import PointFn, compute_point, execute_point
from .store import Store, StoreDamaged
from .studyfile import Study, array_sha256, load_study_file

#: how often a lost task (dead worker, cancelled future) is resubmitted before it is stored as failed
DEFAULT_RETRIES = 2


@dataclass
class RunSummary:
    store: str
    total: int
    skipped: int
    computed: int = 0
    failed: int = 0
    wall_s: float = 0.0
    compute_s: float = 0.0   # sum over points of the time spent inside the point function
    store_s: float = 0.0     # time spent writing the store
    setup_s: float = 0.0     # validation + cluster start-up
    loop_s: float = 0.0      # first submission → last point stored
    mode: str = "in-process"
    repaired: int = 0        # damaged records removed (and recomputed) by recompute_damaged
    retried: int = 0         # lost tasks resubmitted
    failures: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def plan(study: Study, version: str | None = None) -> list[tuple[int, str, dict]]:
    """(index, key, config) of every distinct point, validated (raises before anything runs)."""
    configs = study.point_configs()
    seen: set[str] = set()
    out = []
    for i, cfg in enumerate(configs):
        k = point_key(cfg, version)
        if k in seen:
            continue
        seen.add(k)
        out.append((i, k, cfg))
    return out


def make_client(workers: int | None, scheduler: str | None, cluster_options: dict | None = None):
    """A Dask client for ``workers`` local processes or an existing ``scheduler``: (client,
    cluster or None, description).  A LocalCluster listens on 127.0.0.1 only, opens no dashboard,
    (its scheduler's internal HTTP routes on a free localhost port), and reports a worker death at once (the runner's own retries decide what happens next);
    ``cluster_options`` are passed on to ``LocalCluster`` and override these."""
    import dask
    from distributed import Client, LocalCluster

    if workers is not None and scheduler is not None:
        raise ParameterError("workers/scheduler", (workers, scheduler), "at most one of --workers and --scheduler")
    if scheduler is not None:
        return Client(scheduler, timeout="30s"), None, f"scheduler {scheduler}"
    if workers is None or workers < 1:
        raise ParameterError("workers", workers, "an integer >= 1")
    opts = {"n_workers": workers, "threads_per_worker": 1, "processes": True, "host": "127.0.0.1",
            "dashboard_address": None, "silence_logs": 40, **(cluster_options or {})}
    if opts["dashboard_address"] is None:
        # None alone still serves the scheduler's HTTP routes (and the dashboard, with bokeh) on
        # port 8787, clashing between concurrent runs: no dashboard, and a free localhost port
        opts["scheduler_kwargs"] = {"dashboard": False, "dashboard_address": f"{opts['host']}:0",
                                    **opts.get("scheduler_kwargs", {})}
    # a worker's death is blamed on the one task it was running (one task per single-threaded
    # worker at a time: saturation 1.0), at once (allowed-failures 0); the runner retries it
    with dask.config.set({"distributed.worker.daemon": False, "distributed.scheduler.allowed-failures": 0,
                          "distributed.scheduler.worker-saturation": 1.0}):
        cluster = LocalCluster(**opts)
        return Client(cluster), cluster, f"LocalCluster({workers} workers)"


class _ThreadPool:
    """``threads`` daemon threads running submitted calls (concurrent.futures Futures): the
    in-process backend.  Daemon threads, so that after Ctrl-C the process exits without waiting
    for the points in flight (their results would be discarded anyway)."""

    def __init__(self, threads: int):
        self._q: _queue.SimpleQueue = _queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, daemon=True, name=f"deepeft-point-{i}")
                         for i in range(threads)]
        for t in self._threads:
            t.start()

    def _work(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            fut, fn, args = item
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn(*args))
            except BaseException as exc:  # noqa: BLE001  (handed to the loop, which decides)
                fut.set_exception(exc)

    def submit(self, fn, *args) -> Future:
        fut: Future = Future()
        self._q.put((fut, fn, args))
        return fut

    def shutdown(self) -> None:
        for _ in self._threads:
            self._q.put(None)


def run_study(study: Study | str | os.PathLike, out: str | os.PathLike | None = None, *,
              workers: int | None = None, scheduler: str | None = None, threads: int = 1,
              point_fn: PointFn | None = None, progress: bool | str = "auto",
              max_in_flight: int | None = None, extra_config: dict | None = None,
              retries: int = DEFAULT_RETRIES, recompute_damaged: bool = False,
              cluster_options: dict | None = None) -> RunSummary:
    """Compute every unfinished point of ``study`` and store it in ``out`` (default: the study's
    output folder).  ``point_fn`` defaults to :func:`~deepeft.studies.points.compute_point`;
    ``extra_config`` is merged into every point's configuration (and so into its key).  Stored
    points of this plan whose arrays fail their checksum raise
    :class:`~deepeft.studies.store.StoreDamaged`, or with ``recompute_damaged`` are recomputed
    (every intact record is kept).  ``retries``: resubmissions of a lost task (module docstring)."""
    t_start = time.perf_counter()
    if not isinstance(study, Study):
        study = load_study_file(study)
    if threads < 1:
        raise ParameterError("threads", threads, "an integer >= 1")
    if retries < 0:
        raise ParameterError("retries", retries, "an integer >= 0")
    __version__ = result_version()
    point_fn = point_fn or compute_point
    planned = plan(study)
    if extra_config:
        planned = [(i, None, {**cfg, **extra_config}) for i, _, cfg in planned]
        planned = [(i, point_key(cfg), cfg) for i, _, cfg in planned]
    x = study.input_array()
    outdir = study.output_dir(out)

    with Store(outdir) as store:
        store.set_meta("study_name", study.name)
        store.set_meta("study_source", study.source)
        if study.text:
            store.set_meta("study_text", study.text)
        store.set_meta("run_options", json.dumps(study.run.to_dict(), sort_keys=True))
        store.set_meta("planned_keys", json.dumps([k for _, k, _ in planned]))
        store.set_meta("planned_idx", json.dumps([i for i, _, _ in planned]))
        store.set_meta("planned_at", repr(time.time()))
        store.put_inputs(array_sha256(x), x)
        damaged = store.damaged([k for _, k, _ in planned])
        if damaged and not recompute_damaged:
            raise StoreDamaged(f"{store.path}: {len(damaged)} stored point(s) of this study are damaged (their arrays "
                               f"fail the checksum): points {', '.join(str(d['idx']) for d in damaged[:20])}.  "
                               f"Run `deepeft study repair {outdir}` (or `study run --recompute-damaged`) to "
                               f"recompute just these.", damaged)
        store.delete_points(d["key"] for d in damaged)
        done = store.finished_keys()
        todo = [p for p in planned if p[1] not in done]
        summary = RunSummary(store=str(store.path), total=len(planned), skipped=len(planned) - len(todo),
                             repaired=len(damaged))
        if not todo:
            summary.wall_s = time.perf_counter() - t_start
            return summary

        dispatch(store, [(i, k, cfg, cfg) for i, k, cfg in todo], point_fn, x, version=__version__, summary=summary,
                 workers=workers, scheduler=scheduler, threads=threads, threads_per_point=study.run.threads_per_point,
                 progress=progress, desc=study.name, max_in_flight=max_in_flight, t_start=t_start,
                 retries=retries, cluster_options=cluster_options)
        summary.wall_s = time.perf_counter() - t_start
        return summary


def dispatch(store: Store, todo: list, point_fn: PointFn, inputs: Any = None, *, version: str, summary: RunSummary,
             workers: int | None = None, scheduler: str | None = None, threads: int = 1, threads_per_point: int = 1,
             serial: bool = False, progress: bool | str = "auto", desc: str = "", unit: str = "pt",
             max_in_flight: int | None = None, on_stored: Callable | None = None, t_start: float | None = None,
             retries: int = DEFAULT_RETRIES, cluster_options: dict | None = None) -> None:
    """Compute the points ``todo`` — (index, key, stored configuration, configuration given to
    ``point_fn``) — and write each to ``store`` as soon as it arrives (the one dispatch loop of
    studies and LLC sweeps).  ``serial=True`` (with neither ``workers`` nor ``scheduler``) runs the
    points one after another in this thread, so that a point function's own Ctrl-C handling works
    (a sampler checkpoint); otherwise through Dask (module docstring).  ``on_stored(index, key,
    result)`` is called after each write; ``summary`` is filled in.  A lost task is resubmitted
    ``retries`` times, then stored as failed."""
    from tqdm.auto import tqdm

    t_start = time.perf_counter() if t_start is None else t_start
    pbar = tqdm(total=summary.total, initial=summary.skipped, unit=unit, desc=desc,
                disable=None if progress == "auto" else not progress,
                file=sys.stderr, dynamic_ncols=True, smoothing=0.1)

    def write(i, key, cfg, res):
        t0 = time.perf_counter()
        store.write_point(key, idx=i, config=cfg, version=version, arrays=res["arrays"], status=res["status"],
                          error=res["error"], compute_s=res["compute_s"], host=res["host"])
        summary.store_s += time.perf_counter() - t0
        summary.compute_s += res["compute_s"]
        summary.computed += 1
        if res["status"] != "ok":
            summary.failed += 1
            summary.failures.append(f"point {i}: {res['error'].splitlines()[0]}")
            pbar.set_postfix(failed=summary.failed)
        pbar.update(1)
        if on_stored is not None:
            on_stored(i, key, res)

    try:
        if serial and workers is None and scheduler is None:
            import torch

            summary.mode = "in-process (serial)"
            summary.setup_s = time.perf_counter() - t_start
            t_loop = time.perf_counter()
            for i, key, cfg, run_cfg in todo:
                write(i, key, cfg, execute_point(point_fn, run_cfg, inputs, torch.get_num_threads()))
            summary.loop_s = time.perf_counter() - t_loop
            return
        _pool_loop(todo, point_fn, inputs, write, summary, workers, scheduler, threads, threads_per_point,
                   max_in_flight, t_start, retries, cluster_options)
    finally:
        pbar.close()


def _lost(exc: BaseException, attempts: int) -> dict[str, Any]:
    """The failed result of a point whose task never returned."""
    import socket

    reason = f"{type(exc).__name__}: {exc}".strip()
    return {"status": "failed", "arrays": {}, "compute_s": 0.0, "host": socket.gethostname(),
            "error": f"task lost {attempts} time(s) — its worker died (killed, crashed or out of memory) or the task "
                     f"was cancelled; last: {reason}"}


def _pool_loop(todo, point_fn, inputs, write, summary, workers, scheduler, threads, threads_per_point,
               max_in_flight, t_start, retries, cluster_options) -> None:
    try:
        import torch
        torch_threads = torch.get_num_threads()  # in-process points change it; restored below
    except ImportError:  # pragma: no cover
        torch, torch_threads = None, None
    client = cluster = pool = None
    if workers is None and scheduler is None:
        pool = _ThreadPool(threads)
        summary.mode = f"in-process ({threads} thread{'s' if threads > 1 else ''})"
        n_slots = threads

        def submit_fn(run_cfg):
            return pool.submit(execute_point, point_fn, run_cfg, inputs, threads_per_point)

        def wait_first(fs):
            return _cf_wait(fs, return_when=FIRST_COMPLETED)[0]

        def on_lost():
            pass
    else:
        from distributed import wait as _dask_wait

        client, cluster, summary.mode = make_client(workers, scheduler, cluster_options)
        n_slots = sum(client.nthreads().values()) or 1

        def submit_fn(run_cfg):
            # the inputs travel with each task (a study's inputs are small): no scattered copy that a
            # dying worker could take along, leaving every later task waiting for it
            return client.submit(execute_point, point_fn, run_cfg, inputs, threads_per_point, pure=False)

        def wait_first(fs):
            try:
                return _dask_wait(list(fs), return_when="FIRST_COMPLETED").done
            except Exception:  # noqa: BLE001  (wait raises when a future was cancelled: handled per future)
                done = {f for f in fs if f.done()}
                if not done:
                    raise
                return done

        def on_lost():
            pass
    summary.setup_s = time.perf_counter() - t_start
    futures: dict = {}
    attempts: dict[str, int] = {}
    try:
        window = max_in_flight or max(2 * n_slots, 4)
        queue = list(todo)
        queue.reverse()

        def submit(item):
            futures[submit_fn(item[3])] = item

        t_loop = time.perf_counter()
        with catch_interrupts(raise_now=True) as interrupt:
            while queue or futures:
                while queue and len(futures) < window:
                    submit(queue.pop())
                for fut in wait_first(set(futures)):
                    if interrupt["hit"]:  # the KeyboardInterrupt itself may have been swallowed
                        raise KeyboardInterrupt
                    item = futures.pop(fut)
                    i, key, cfg, run_cfg = item
                    try:
                        res = fut.result()
                    except (KeyboardInterrupt, SystemExit):
                        raise
                    except BaseException as exc:  # noqa: BLE001  (lost task: worker died, cancelled)
                        attempts[key] = attempts.get(key, 0) + 1
                        if attempts[key] <= retries:
                            summary.retried += 1
                            on_lost()
                            submit(item)
                            continue
                        res = _lost(exc, attempts[key])
                    write(i, key, cfg, res)
                    if interrupt["hit"]:
                        raise KeyboardInterrupt
        summary.loop_s = time.perf_counter() - t_loop
    finally:
        if pool is not None:
            for f in futures:
                f.cancel()
            pool.shutdown()
        if client is not None:
            if futures:
                client.cancel(list(futures))
            client.close()
        if cluster is not None:
            cluster.close()
        if torch is not None and torch.get_num_threads() != torch_threads:
            torch.set_num_threads(torch_threads)


def stored_study(out: str | os.PathLike) -> Study:
    """The study as stored with its results (the study file's text, read again from the store)."""
    from .studyfile import study_from_text

    with Store(out, create=False, readonly=True) as store:
        meta = store.meta()
    if not meta.get("study_text"):
        raise ParameterError("study", None, "a study file (this store does not hold the text of its study file)")
    return study_from_text(meta["study_text"], meta.get("study_source") or "study.toml")


def prune_study(out: str | os.PathLike) -> int:
    """Delete the records of points that are not in the study as last run into ``out`` (points
    removed from the study file, results of older code versions); returns how many were removed."""
    from .results import current_plan

    with Store(out, create=False) as store:
        meta = store.meta()
        plan = current_plan(meta)
        if plan is None:
            raise ParameterError("out", str(out), "a study store that records its plan (run the study once with "
                                 "this deepeft version first)")
        since = float(meta.get("planned_at", "inf"))
        stale = [k for k, fin in store.conn.execute("SELECT key, finished_at FROM points")
                 if k not in plan and not (fin is not None and fin > since)]
        n = store.delete_points(stale)
        store.drop_unused_inputs()
        store.conn.execute("VACUUM")
    return n


def salvage_store(out: str | os.PathLike) -> tuple[Path, int]:
    """Move a damaged ``study.sqlite`` aside (``study.sqlite.damaged-TIME``) and copy every record
    that can still be read and passes its checksums into a fresh store; returns (the moved file,
    the number of points kept)."""
    import sqlite3

    from .store import STORE_NAME, bytes_to_array, checksum, resolve_store_path

    path = resolve_store_path(out)
    aside = path.with_name(f"{STORE_NAME}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    os.replace(path, aside)
    for side in ("-wal", "-shm"):
        if path.with_name(path.name + side).exists():
            os.replace(path.with_name(path.name + side), aside.with_name(aside.name + side))
    kept = 0

    def rows(con, sql, args=()):
        try:
            return con.execute(sql, args).fetchall()
        except sqlite3.DatabaseError:
            return []

    with Store(path.parent) as new:
        try:
            con = sqlite3.connect(f"file:{aside}?mode=ro", uri=True)
        except sqlite3.DatabaseError:
            return aside, 0
        try:
            for k, v in rows(con, "SELECT key, value FROM meta"):
                if k != "schema":
                    new.set_meta(k, v)
            for sha, data in rows(con, "SELECT sha256, data FROM inputs"):
                new.put_inputs(sha, bytes_to_array(data))
            for (key,) in rows(con, "SELECT key FROM points"):
                pt = rows(con, "SELECT idx, status, config, version, error, compute_s, host, meta FROM points "
                               "WHERE key = ?", (key,))
                arr = rows(con, "SELECT name, data, crc32 FROM arrays WHERE point_key = ?", (key,))
                if not pt or any(crc is not None and checksum(d) != crc for _, d, crc in arr):
                    continue
                idx, st, config, version, error, compute_s, host, meta = pt[0]
                try:
                    arrays = {n: bytes_to_array(d) for n, d, _ in arr}
                    new.write_point(key, idx=idx, config=json.loads(config), version=version, arrays=arrays,
                                    status=st, error=error, compute_s=compute_s, host=host,
                                    meta=json.loads(meta) if meta else None)
                    kept += 1
                except ValueError:
                    continue
        finally:
            con.close()
    return aside, kept


def repair_study(out: str | os.PathLike, study: Study | str | os.PathLike | None = None, **run_kwargs) -> dict:
    """Bring a damaged store back: a damaged SQLite file is salvaged (:func:`salvage_store`), then
    every point whose arrays fail their checksum — and every point lost with the file — is
    recomputed; intact records are kept as they are.  ``study`` defaults to the study file's text
    stored with the results.  Returns what was done."""
    from .store import StoreDamaged as _Damaged

    report: dict[str, Any] = {"salvaged_from": None, "kept": None}
    try:
        with Store(out, create=False, readonly=True) as store:
            store.meta()
            store.damaged()
    except _Damaged as exc:
        if exc.points:
            raise
        aside, kept = salvage_store(out)
        report.update(salvaged_from=str(aside), kept=kept)
    if study is None:
        study = stored_study(out)
    summary = run_study(study, out, recompute_damaged=True, **run_kwargs)
    report["summary"] = summary.to_dict()
    return report
