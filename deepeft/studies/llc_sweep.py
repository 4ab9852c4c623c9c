"""The LLC sweep as a study: λ̂ of many models (training checkpoints, seeds, widths) computed by the
one study runner into the embedded store (engine side: :mod:`deepeft.bayes.sweep`).

* **Resume.**  A point's key is the sha256 of its configuration (model and data digests, loss,
  sampler settings) and the result version of deepeft.core + deepeft.bayes; a rerun skips every
  finished point.  In-process runs also give each point a sampler checkpoint (``out/checkpoints``),
  so an interrupted point resumes at the step it reached; it is deleted once the point is stored.
* **Scale-out.**  ``workers=k`` runs the points on a local Dask cluster of k processes and
  ``scheduler="tcp://…"`` on an existing one (models and data are read from the sweep folder, which
  the workers must see).
* A point that fails is stored with its error and the sweep goes on; a rerun retries it.
* The store is the studies' store: one writer at a time (a lock), checksummed arrays (a rerun
  recomputes damaged points), readable from read-only storage.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..core.errors import ParameterError
from .runner import RunSummary, dispatch
from .store import Store


def llc_sweep(models: Sequence[Any], data: Any, loss_fn: str = "mse", *, out: str | os.PathLike = "llc-sweep",
              labels: Sequence[str] | None = None, workers: int | None = None, scheduler: str | None = None,
              progress: bool | str = "auto", **llc_kwargs):
    """λ̂ of every model in ``models`` (files saved with ``torch.save(model, path)``, or modules) on
    ``data`` (a torch.save file, or in-memory data as accepted by :func:`~deepeft.bayes.estimate_llc`),
    with the same ``llc_kwargs`` (``lr``, ``localization``, ``nbeta``, ``num_chains``, ``num_draws``, …;
    JSON-able values only).  ``loss_fn`` is a built-in loss name.  Returns a pandas DataFrame, one row
    per model in order: ``label``, ``llc_mean``, ``llc_se``, ``llc_std``, ``rhat``, ``ess``, ``status``,
    ``error``.
    """
    from ..bayes.sweep import llc_point, plan_llc_sweep

    outdir, version, labels, planned = plan_llc_sweep(models, data, loss_fn, out=out, labels=labels, **llc_kwargs)
    serial = workers is None and scheduler is None
    with Store(outdir) as store:
        store.set_meta("study_name", "llc-sweep")
        damaged = store.damaged([k for _, k, _, _ in planned])
        if damaged:  # arrays that fail their checksum: recomputed, every intact point kept
            import warnings
            warnings.warn(f"{store.path}: recomputing {len(damaged)} damaged point(s) (arrays that fail their "
                          "checksum)", RuntimeWarning, stacklevel=2)
            store.delete_points(d["key"] for d in damaged)
        done = store.finished_keys()
        todo, queued = [], set()
        for i, key, cfg, runtime in planned:  # a model listed twice is computed once
            if key not in done and key not in queued:
                if serial:  # in this process: the point's sampler state survives a Ctrl-C
                    runtime["checkpoint"] = str(_checkpoint_path(outdir, key))
                todo.append((i, key, cfg, runtime))
                queued.add(key)

        def drop_checkpoint(i, key, res):
            if serial and res["status"] == "ok":  # stored: the sampler state is no longer needed
                _checkpoint_path(outdir, key).unlink(missing_ok=True)

        summary = RunSummary(store=str(store.path), total=len(planned), skipped=len(planned) - len(todo))
        if todo:
            dispatch(store, todo, llc_point, None, version=version, summary=summary, workers=workers,
                     scheduler=scheduler, threads=1, threads_per_point=1, serial=serial, progress=progress,
                     desc="llc-sweep", unit="model", on_stored=drop_checkpoint)
    df = load_llc_sweep(outdir, keys=[k for _, k, _, _ in planned])
    df["index"] = [i for i, _, _, _ in planned]  # this call's order and labels
    df["label"] = labels
    return df


def _checkpoint_path(outdir: Path, key: str) -> Path:
    return (Path(outdir) / "checkpoints" / f"{key[:24]}.ckpt").resolve()


def load_llc_sweep(out: str | os.PathLike, keys: Sequence[str] | None = None):
    """The stored sweep as a DataFrame (one row per model; ``keys`` selects and orders the points)."""
    import pandas as pd

    rows = {}
    with Store(out, create=False, readonly=True) as store:
        for rec in store.records():
            if rec["config"].get("kind") != "llc":
                continue
            a = rec["arrays"]

            def scal(name):
                return float(np.asarray(a[name]).reshape(-1)[0]) if name in a else float("nan")

            rows[rec["key"]] = {"index": rec["config"]["index"], "label": rec["config"]["label"],
                                "llc_mean": scal("llc/mean"), "llc_se": scal("llc/se"), "llc_std": scal("llc/std"),
                                "rhat": scal("llc/rhat"), "ess": scal("llc/ess"), "nbeta": scal("llc/nbeta"),
                                "init_loss": scal("llc/init_loss"), "status": rec["status"], "error": rec["error"],
                                "compute_s": rec["compute_s"], "key": rec["key"]}
    order = keys if keys is not None else sorted(rows, key=lambda k: rows[k]["index"])
    missing = [k for k in order if k not in rows]
    if missing:
        raise ParameterError("keys", missing[0], "keys of points stored in this sweep")
    return pd.DataFrame([dict(rows[k]) for k in order])


