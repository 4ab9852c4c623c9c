"""Run a study's points through Dask; the client alone writes the store.

Three ways to run (pick one):

- in-process (default): a Dask scheduler and ``threads`` worker threads inside this process;
- ``workers=N``: a ``distributed.LocalCluster`` with N single-threaded worker processes;
- ``scheduler=ADDRESS``: an existing cluster (``dask scheduler`` + ``dask worker ADDRESS``, or
  dask-jobqueue on SLURM); workers need deepeft installed.

Points already finished in the store are skipped, so re-running a study resumes it.  Each point is
written in one transaction as soon as its result reaches the client; Ctrl-C (or SIGTERM) cancels
the outstanding points and keeps every finished one.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..core.errors import ParameterError
from .points import PointFn, compute_point, execute_point
from .store import Store
from .studyfile import Study, array_sha256, canonical_json, load_study_file, point_key


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


@contextmanager
def _interrupts_as_keyboardinterrupt():
    """SIGINT and SIGTERM raise KeyboardInterrupt *and* set ``state["hit"]``: a KeyboardInterrupt
    raised while a finalizer runs (e.g. a Dask future's ``__del__``) is swallowed by Python
    ("Exception ignored in …"), so the loop also checks the flag after every point."""
    state = {"hit": False}
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def handler(signum, frame):
        state["hit"] = True
        raise KeyboardInterrupt

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield state
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def _make_client(workers: int | None, scheduler: str | None, threads: int):
    import dask
    from distributed import Client, LocalCluster

    if workers is not None and scheduler is not None:
        raise ParameterError("workers/scheduler", (workers, scheduler), "at most one of --workers and --scheduler")
    if scheduler is not None:
        return Client(scheduler, timeout="30s"), None, f"scheduler {scheduler}"
    with dask.config.set({"distributed.worker.daemon": False}):
        if workers is not None:
            if workers < 1:
                raise ParameterError("workers", workers, "an integer >= 1")
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None, silence_logs=40)
            return Client(cluster), cluster, f"LocalCluster({workers} workers)"
        cluster = LocalCluster(n_workers=1, threads_per_worker=threads, processes=False,
                               dashboard_address=None, silence_logs=40)
        return Client(cluster), cluster, f"in-process ({threads} thread{'s' if threads > 1 else ''})"


def run_study(study: Study | str | os.PathLike, out: str | os.PathLike | None = None, *,
              workers: int | None = None, scheduler: str | None = None, threads: int = 1,
              point_fn: PointFn | None = None, progress: bool = True,
              max_in_flight: int | None = None, extra_config: dict | None = None) -> RunSummary:
    """Compute every unfinished point of ``study`` and store it in ``out`` (default: the study's
    output folder).  ``point_fn`` defaults to :func:`~deepeft.studies.points.compute_point`;
    ``extra_config`` is merged into every point's configuration (and so into its key)."""
    t_start = time.perf_counter()
    if not isinstance(study, Study):
        study = load_study_file(study)
    if threads < 1:
        raise ParameterError("threads", threads, "an integer >= 1")
    from .._provenance import result_version
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
        store.put_inputs(array_sha256(x), x)
        done = store.finished_keys()
        todo = [p for p in planned if p[1] not in done]
        summary = RunSummary(store=str(store.path), total=len(planned), skipped=len(planned) - len(todo))
        if not todo:
            summary.wall_s = time.perf_counter() - t_start
            return summary

        try:
            import torch
            torch_threads = torch.get_num_threads()  # in-process points change it; restored below
        except ImportError:  # pragma: no cover
            torch, torch_threads = None, None
        client, cluster, summary.mode = _make_client(workers, scheduler, threads)
        summary.setup_s = time.perf_counter() - t_start
        tpp = study.run.threads_per_point
        pbar = None
        futures: dict = {}
        try:
            from distributed import as_completed
            from tqdm.auto import tqdm

            n_slots = sum(client.nthreads().values()) or 1
            window = max_in_flight or max(2 * n_slots, 4)
            pbar = tqdm(total=len(planned), initial=summary.skipped, unit="pt", desc=study.name,
                        disable=not progress, file=sys.stderr, dynamic_ncols=True, smoothing=0.1)
            x_f = client.scatter(x, broadcast=True)
            queue = list(todo)
            queue.reverse()

            def submit_one():
                i, key, cfg = queue.pop()
                fut = client.submit(execute_point, point_fn, cfg, x_f, tpp, pure=False)
                futures[fut] = (i, key, cfg)
                return fut

            t_loop = time.perf_counter()
            ac = as_completed([submit_one() for _ in range(min(window, len(queue)))], with_results=True)
            with _interrupts_as_keyboardinterrupt() as interrupt:
                for fut, res in ac:
                    if interrupt["hit"]:  # the KeyboardInterrupt itself may have been swallowed
                        raise KeyboardInterrupt
                    i, key, cfg = futures.pop(fut)
                    if queue:
                        ac.add(submit_one())
                    t0 = time.perf_counter()
                    store.write_point(key, idx=i, config=cfg, version=__version__, arrays=res["arrays"],
                                      status=res["status"], error=res["error"], compute_s=res["compute_s"],
                                      host=res["host"])
                    summary.store_s += time.perf_counter() - t0
                    summary.compute_s += res["compute_s"]
                    summary.computed += 1
                    if res["status"] != "ok":
                        summary.failed += 1
                        summary.failures.append(f"point {i}: {res['error'].splitlines()[0]}")
                    pbar.update(1)
                    if summary.failed:
                        pbar.set_postfix(failed=summary.failed)
                    if interrupt["hit"]:
                        raise KeyboardInterrupt
            summary.loop_s = time.perf_counter() - t_loop
        finally:
            if pbar is not None:
                pbar.close()
            if futures:
                client.cancel(list(futures))
            client.close()
            if cluster is not None:
                cluster.close()
            if torch is not None and torch.get_num_threads() != torch_threads:
                torch.set_num_threads(torch_threads)
        summary.wall_s = time.perf_counter() - t_start
        return summary
