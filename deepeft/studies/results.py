"""Load a study's store as a pandas DataFrame (or an xarray Dataset when xarray is installed)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .store import Store

#: configuration fields that become DataFrame columns (in this order)
CONFIG_COLUMNS = ("activation", "width", "depth", "init", "C_b", "C_W", "parameterization", "residual",
                  "residual_xi", "ensemble", "seed", "output_width", "n_inputs", "input_dim", "order",
                  "device", "chunk_size")


def _store_path(path: str | os.PathLike) -> Path:
    p = Path(path)
    if p.suffix.lower() in (".toml", ".yaml", ".yml") and p.is_file():
        from .studyfile import load_study_file
        return load_study_file(p).output_dir()
    return p


def current_plan(meta: dict[str, str]) -> dict[str, int] | None:
    """{key: index} of the study as last run into this store (``None`` for stores that do not
    record it: LLC sweeps, stores written before plans were recorded)."""
    if "planned_keys" not in meta:
        return None
    keys = json.loads(meta["planned_keys"])
    idx = json.loads(meta["planned_idx"]) if "planned_idx" in meta else list(range(len(keys)))
    return dict(zip(keys, idx))


def load_study(path: str | os.PathLike, *, arrays: bool = True, status: str | None = None,
               all_records: bool = False, verify: bool = True) -> pd.DataFrame:
    """One row per point of the study as currently defined.  ``path``: the output folder, its
    ``study.sqlite``, or the study file (whose output folder is used).  Columns: ``key``, ``idx``,
    ``status``, the configuration fields (:data:`CONFIG_COLUMNS`), ``compute_s``, ``host``,
    ``version``, ``error``, and — with ``arrays=True`` — one object column per stored array
    (``theory/kernel``, ``measured/V_norm``, ``stderr/…``, ``z/…``) holding numpy arrays (None
    where a point lacks it).

    Records of points no longer in the study (removed from the study file, or computed by another
    code version, before the study was last run) stay in the store but are left out; ``all_records=True`` shows them too
    (``deepeft study prune`` deletes them).  Arrays are checked against their checksums
    (``verify``); damage raises :class:`~deepeft.studies.store.StoreDamaged` naming the points."""
    with Store(_store_path(path), create=False, readonly=True) as store:
        meta = store.meta()
        plan = None if all_records else current_plan(meta)
        keys = None
        if plan is not None:  # the plan, and records written since it was made (by hand, by a tool)
            since = float(meta.get("planned_at", "inf"))
            keys = {k for k, fin in store.conn.execute("SELECT key, finished_at FROM points")
                    if k in plan or (fin is not None and fin > since)}
        rows = []
        for rec in store.records(arrays=arrays, status=status, keys=keys, verify=verify):
            cfg = rec["config"]
            idx = plan.get(rec["key"], rec["idx"]) if plan is not None else rec["idx"]
            row = {"key": rec["key"], "idx": idx, "status": rec["status"]}
            for c in CONFIG_COLUMNS:
                v = cfg.get(c)
                row[c] = tuple(v) if isinstance(v, list) else v
            row.update(compute_s=rec["compute_s"], host=rec["host"], version=rec["version"], error=rec["error"])
            row["config"] = cfg
            for name, a in rec["arrays"].items():
                row[name] = a
            rows.append(row)
    if plan is not None:
        rows.sort(key=lambda r: (r["idx"], r["key"]))
    df = pd.DataFrame(rows)
    if df.empty:
        df = pd.DataFrame(columns=["key", "idx", "status", *CONFIG_COLUMNS, "compute_s", "host", "version", "error", "config"])
    return df


def load_study_xarray(path: str | os.PathLike, names: tuple[str, ...] | None = None):
    """The study as an ``xarray.Dataset`` (needs xarray): dimension ``point`` plus, per array, its
    own axes with layers padded to the deepest point (padding is NaN).  Configuration fields are
    coordinates along ``point``."""
    try:
        import xarray as xr
    except ImportError:
        from ..core.errors import ParameterError
        raise ParameterError("xarray", None, "installed (pip install xarray) to load a study as a Dataset") from None
    df = load_study(path, status="ok")
    array_cols = [c for c in df.columns if "/" in c]
    if names:
        array_cols = [c for c in array_cols if c in names]
    data_vars = {}
    for c in array_cols:
        arrs = [a for a in df[c] if isinstance(a, np.ndarray)]
        if not arrs:
            continue
        shape = tuple(max(a.shape[d] for a in arrs) for d in range(arrs[0].ndim))
        out = np.full((len(df), *shape), np.nan)
        for i, a in enumerate(df[c]):
            if isinstance(a, np.ndarray):
                out[(i, *[slice(0, s) for s in a.shape])] = a
        dims = ("point", "layer", *[f"{c}_dim{d}" for d in range(1, len(shape))])
        data_vars[c] = (dims, out)
    coords = {k: ("point", df[k].astype(str).to_numpy() if df[k].dtype == object else df[k].to_numpy())
              for k in ("key", *CONFIG_COLUMNS) if k in df}
    return xr.Dataset(data_vars, coords=coords)
