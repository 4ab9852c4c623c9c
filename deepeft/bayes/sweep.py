"""λ̂ across many models — training checkpoints, seeds, widths — as points of a study.

This module is the engine side: :func:`plan_llc_sweep` prepares the sweep folder and the points
(keys, configurations) and :func:`llc_point` is the point function; the study runner
(:func:`deepeft.studies.runner.dispatch`) computes and stores them — :func:`deepeft.studies.llc_sweep.llc_sweep`
puts the two together (also importable as ``deepeft.bayes.llc_sweep``).

The sweep folder is self-contained: models and data given as Python objects are saved into it
first, content-addressed.  A point's key is the sha256 of what determines its result (model and data
digests, loss, sampler settings) and of the result version of deepeft.core + deepeft.bayes, so
editing the sampler recomputes stored λ̂ (resume, scale-out and failures:
:mod:`deepeft.studies.llc_sweep`).
"""
from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..core.errors import ParameterError

def _jsonable_setting(name: str, v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, (list, tuple)) and all(isinstance(u, (bool, int, float, str)) for u in v):
        return list(v)
    raise ParameterError(name, type(v).__name__, "a number, string, bool or list of those in an llc_sweep "
                         "(settings are part of each point's key)")


def llc_point(config: dict[str, Any], _inputs: Any = None) -> dict[str, np.ndarray]:
    """Point function (runs on a Dask worker or in-process): load the model and data from the sweep
    folder and estimate λ̂ with the point's settings."""
    from .llc import estimate_llc

    model = torch.load(config["model_path"], weights_only=False, map_location="cpu")
    data = torch.load(config["data_path"], weights_only=False, map_location="cpu")
    kw = dict(config["settings"])
    if config.get("checkpoint"):
        kw["checkpoint"] = config["checkpoint"]
        kw["checkpoint_every"] = config["checkpoint_every"]
    r = estimate_llc(model, data, config["loss"], **kw)
    d = r.diagnostics

    def num(v):
        return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else float("nan")

    return {"llc/mean": np.asarray(r.llc_mean), "llc/se": np.asarray(r.llc_se), "llc/std": np.asarray(r.llc_std),
            "llc/per_chain": np.asarray(r.llc_per_chain, dtype=np.float64),
            "llc/loss_trace": np.asarray(r.loss_trace, dtype=np.float64),
            "llc/init_loss": np.asarray(r.init_loss), "llc/nbeta": np.asarray(float(r.nbeta)),
            "llc/rhat": np.asarray(num(d.get("rhat"))), "llc/ess": np.asarray(num(d.get("ess")))}


def plan_llc_sweep(models: Sequence[str | os.PathLike | nn.Module], data: Any, loss_fn: str = "mse", *,
                   out: str | os.PathLike = "llc-sweep", labels: Sequence[str] | None = None, **llc_kwargs):
    """Validate an LLC sweep (arguments of :func:`deepeft.studies.llc_sweep.llc_sweep`), save models
    and data given as Python objects into the sweep folder ``out``, and return
    ``(outdir, version, labels, planned)`` with ``planned`` = [(index, key, stored configuration,
    configuration of :func:`llc_point`)] in the models' order.
    """
    from ..core.provenance import BAYES_PACKAGES, file_sha256, point_key, result_version
    from ._data import LOSSES

    if not isinstance(loss_fn, str) or loss_fn not in LOSSES:
        raise ParameterError("loss_fn", loss_fn, f"one of {sorted(LOSSES)} in an llc_sweep (points may run in other processes)")
    models = list(models)
    if not models:
        raise ParameterError("models", models, "at least one model")
    if labels is not None and len(labels) != len(models):
        raise ParameterError("labels", len(labels), f"one label per model ({len(models)})")
    for k in ("checkpoint", "progress"):  # set per point
        if k in llc_kwargs:
            raise ParameterError(k, llc_kwargs[k], "not given to llc_sweep (it sets it per point)")
    # how often a point saves its sampler state does not change its result: not part of the key
    ck_every = llc_kwargs.pop("checkpoint_every", 1000)
    settings = {k: _jsonable_setting(k, v) for k, v in sorted(llc_kwargs.items())}
    if isinstance(settings.get("lr"), str):
        raise ParameterError("lr", settings["lr"], "a number in an llc_sweep (calibrate once, then sweep)")
    outdir = Path(out)
    (outdir / "models").mkdir(parents=True, exist_ok=True)
    (outdir / "checkpoints").mkdir(parents=True, exist_ok=True)

    # data: a file, or in-memory data saved into the sweep folder
    if isinstance(data, (str, os.PathLike)):
        data_path = Path(data)
        if not data_path.exists():
            raise ParameterError("data", str(data), "an existing torch.save file or in-memory data")
    else:
        data_path = outdir / "data.pt"
        torch.save(data, data_path)
    data_sha = file_sha256(data_path)

    # models: files (digest of the bytes), or modules saved into the sweep folder under a digest of
    # their architecture and weights (content-addressed: the same module always maps to one file)
    paths, digests = [], []
    for i, m in enumerate(models):
        if isinstance(m, nn.Module):
            from .checkpoint import tensor_digest

            sd = m.state_dict()
            dg = hashlib.sha256((repr(m) + "".join(sd) + tensor_digest(*sd.values())).encode()).hexdigest()
            p = outdir / "models" / f"model_{dg[:16]}.pt"
            if not p.exists():
                torch.save(m, p)
        elif isinstance(m, (str, os.PathLike)):
            p = Path(m)
            if not p.exists():
                raise ParameterError(f"models[{i}]", str(m), "an existing file saved with torch.save(model, path)")
            dg = file_sha256(p)
        else:
            raise ParameterError(f"models[{i}]", type(m).__name__, "a file path or an nn.Module")
        paths.append(p)
        digests.append(dg)
    labels = [str(v) for v in labels] if labels is not None else (
        [Path(p).stem if isinstance(m, (str, os.PathLike)) else f"model_{i}" for i, (p, m) in enumerate(zip(paths, models))])

    version = result_version(BAYES_PACKAGES)  # editing the sampler recomputes stored points
    planned = []
    for i, (p, dg, lab) in enumerate(zip(paths, digests, labels)):
        # the key covers what determines the result (not the model's position or label: reordering or
        # relabelling the models reuses stored points)
        ident = {"kind": "llc", "model_sha256": dg, "data_sha256": data_sha, "loss": loss_fn,
                 "settings": settings}
        key = point_key(ident, version)
        cfg = {**ident, "index": i, "label": lab}
        runtime = {**cfg, "model_path": str(p.resolve()), "data_path": str(data_path.resolve()),
                   "checkpoint_every": ck_every}
        planned.append((i, key, cfg, runtime))
    return outdir, version, labels, planned

def plot_llc_sweep(df, path: str | os.PathLike) -> None:
    """λ̂ ± 2 SE against the models' order (e.g. training checkpoints)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = df[df["status"] == "ok"]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.errorbar(ok["index"], ok["llc_mean"], yerr=2 * ok["llc_se"], fmt="o-", ms=3, capsize=2)
    ax.set_xticks(list(ok["index"]))
    ax.set_xticklabels(list(ok["label"]), rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("λ̂ (± 2 SE)")
    ax.set_title("local learning coefficient across models")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
