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
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable


from ..core.errors import ParameterError
from ..core.interrupts import catch_interrupts
from ..core.provenance import point_key, result_version
from .points import PointFn, compute_point, execute_point
from .store import Store
from .studyfile import Study, array_sha256, load_study_file


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


def make_client(workers: int | None, scheduler: str | None, threads: int):
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
              point_fn: PointFn | None = None, progress: bool | str = "auto",
              max_in_flight: int | None = None, extra_config: dict | None = None) -> RunSummary:
    """Compute every unfinished point of ``study`` and store it in ``out`` (default: the study's
    output folder).  ``point_fn`` defaults to :func:`~deepeft.studies.points.compute_point`;
    ``extra_config`` is merged into every point's configuration (and so into its key)."""
    t_start = time.perf_counter()
    if not isinstance(study, Study):
        study = load_study_file(study)
    if threads < 1:
        raise ParameterError("threads", threads, "an integer >= 1")
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

        dispatch(store, [(i, k, cfg, cfg) for i, k, cfg in todo], point_fn, x, version=__version__, summary=summary,
                 workers=workers, scheduler=scheduler, threads=threads, threads_per_point=study.run.threads_per_point,
                 progress=progress, desc=study.name, max_in_flight=max_in_flight, t_start=t_start)
        summary.wall_s = time.perf_counter() - t_start
        return summary


def dispatch(store: Store, todo: list, point_fn: PointFn, inputs: Any = None, *, version: str, summary: RunSummary,
             workers: int | None = None, scheduler: str | None = None, threads: int = 1, threads_per_point: int = 1,
             serial: bool = False, progress: bool | str = "auto", desc: str = "", unit: str = "pt",
             max_in_flight: int | None = None, on_stored: Callable | None = None, t_start: float | None = None) -> None:
    """Compute the points ``todo`` — (index, key, stored configuration, configuration given to
    ``point_fn``) — and write each to ``store`` as soon as it arrives (the one dispatch loop of
    studies and LLC sweeps).  ``serial=True`` (with neither ``workers`` nor ``scheduler``) runs the
    points one after another in this thread, so that a point function's own Ctrl-C handling works
    (a sampler checkpoint); otherwise through Dask (module docstring).  ``on_stored(index, key,
    result)`` is called after each write; ``summary`` is filled in."""
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
        _dask_loop(todo, point_fn, inputs, write, summary, workers, scheduler, threads, threads_per_point,
                   max_in_flight, t_start)
    finally:
        pbar.close()


def _dask_loop(todo, point_fn, inputs, write, summary, workers, scheduler, threads, threads_per_point,
               max_in_flight, t_start) -> None:
    try:
        import torch
        torch_threads = torch.get_num_threads()  # in-process points change it; restored below
    except ImportError:  # pragma: no cover
        torch, torch_threads = None, None
    client, cluster, summary.mode = make_client(workers, scheduler, threads)
    summary.setup_s = time.perf_counter() - t_start
    futures: dict = {}
    try:
        from distributed import as_completed

        n_slots = sum(client.nthreads().values()) or 1
        window = max_in_flight or max(2 * n_slots, 4)
        x_f = client.scatter(inputs, broadcast=True) if inputs is not None else None
        queue = list(todo)
        queue.reverse()

        def submit_one():
            i, key, cfg, run_cfg = queue.pop()
            fut = client.submit(execute_point, point_fn, run_cfg, x_f, threads_per_point, pure=False)
            futures[fut] = (i, key, cfg)
            return fut

        t_loop = time.perf_counter()
        ac = as_completed([submit_one() for _ in range(min(window, len(queue)))], with_results=True)
        with catch_interrupts(raise_now=True) as interrupt:
            for fut, res in ac:
                if interrupt["hit"]:  # the KeyboardInterrupt itself may have been swallowed
                    raise KeyboardInterrupt
                i, key, cfg = futures.pop(fut)
                if queue:
                    ac.add(submit_one())
                write(i, key, cfg, res)
                if interrupt["hit"]:
                    raise KeyboardInterrupt
        summary.loop_s = time.perf_counter() - t_loop
    finally:
        if futures:
            client.cancel(list(futures))
        client.close()
        if cluster is not None:
            cluster.close()
        if torch is not None and torch.get_num_threads() != torch_threads:
            torch.set_num_threads(torch_threads)
