"""Point functions: the computation behind one study point.

A point function takes the point's canonical configuration (see
:func:`deepeft.studies.studyfile.resolve_point`) and the study's input array, and returns a dict
of named numpy arrays.  Names are ``"<group>/<quantity>"`` with groups

- ``theory``   the effective-theory prediction (``deepeft.theory.predict``),
- ``measured`` the Monte-Carlo ensemble mean (``deepeft.ensemble.measure``),
- ``stderr``   its standard error,
- ``z``        (measured − theory) / stderr, elementwise (0 where both agree exactly),
- ``hist``     last-layer output histogram of the ensemble (``edges``, ``density``, ``counts``,
               ``info`` = [layer, input index, number of samples]).

Point functions run on Dask workers, so they must be importable module-level functions.
"""
from __future__ import annotations

import hashlib
import socket
import time
import traceback
from typing import Any, Callable

import numpy as np

PointFn = Callable[[dict, np.ndarray], dict]


def zscores(theory: np.ndarray, measured: np.ndarray, stderr: np.ndarray) -> np.ndarray:
    """Elementwise (measured − theory)/stderr; entries with zero error and exact agreement are 0,
    with zero error and disagreement ±inf."""
    theory, measured, stderr = (np.asarray(a, dtype=np.float64) for a in (theory, measured, stderr))
    diff = measured - theory
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(stderr > 0, diff / np.where(stderr > 0, stderr, 1.0), np.where(diff == 0, 0.0, np.sign(diff) * np.inf))
    return z


def compute_point(config: dict[str, Any], inputs: np.ndarray) -> dict[str, np.ndarray]:
    """Theory prediction and ensemble measurement of one point, side by side."""
    from .. import ensemble, theory
    from ..core.observables import Observables
    from ..core.spec import MLPSpec

    spec = MLPSpec.from_dict(config["spec"])
    th = theory.predict(spec, inputs, order=config["order"])
    kw = {}
    if config.get("chunk_size"):
        kw["chunk_size"] = config["chunk_size"]
    wanted = tuple(q for q in config["observables"] if q in ensemble.QUANTITIES)
    if wanted:
        ms = ensemble.measure(spec, inputs, ensemble=config["ensemble"], seed=config["seed"],
                              device=config["device"], quantities=wanted + ("histogram",), **kw)
    else:  # theory-only quantities (K, K1, chi_*): nothing to measure
        ms = Observables(spec, inputs, "ensemble")
    out: dict[str, np.ndarray] = {}
    for q in config["observables"]:
        if q in th.values:
            out[f"theory/{q}"] = np.asarray(th.values[q], dtype=np.float64)
        if q in ms.values:
            out[f"measured/{q}"] = np.asarray(ms.values[q], dtype=np.float64)
            err = ms.errors.get(q)
            if err is not None:
                out[f"stderr/{q}"] = np.asarray(err, dtype=np.float64)
        if f"theory/{q}" in out and f"stderr/{q}" in out and out[f"theory/{q}"].shape == out[f"measured/{q}"].shape:
            out[f"z/{q}"] = zscores(out[f"theory/{q}"], out[f"measured/{q}"], out[f"stderr/{q}"])
    hist = ms.meta.get("histogram")
    if hist:  # last-layer output histogram at input hist["input_index"]
        for k in ("edges", "density", "counts"):
            out[f"hist/{k}"] = np.asarray(hist[k], dtype=np.float64 if k != "counts" else np.int64)
        out["hist/info"] = np.array([hist["layer"], hist["input_index"], hist["n_samples"]], dtype=np.int64)
    # V_norm's theory value is what the 1/n collapse plot needs even if not requested
    if "V_norm" not in config["observables"] and "V_norm" in th.values:
        out["theory/V_norm"] = np.asarray(th.values["V_norm"], dtype=np.float64)
    return out


def synthetic_point(config: dict[str, Any], inputs: np.ndarray) -> dict[str, np.ndarray]:
    """A cheap, deterministic stand-in for :func:`compute_point` used to test and benchmark the
    runner and store without the engines.  Its numbers are pseudo-random functions of the
    configuration and mean nothing physically.  ``config['work_s']`` (optional) busy-waits that
    long, to emulate compute."""
    digest = hashlib.sha256(repr(sorted((k, str(v)) for k, v in config.items())).encode()).digest()
    rng = np.random.default_rng([int.from_bytes(digest[:8], "little"), int(config.get("seed", 0))])
    L, N = int(config["depth"]), int(inputs.shape[0])
    width = config["width"] if isinstance(config["width"], int) else min(config["width"])
    ell = np.arange(1, L + 1, dtype=np.float64)
    out: dict[str, np.ndarray] = {}
    gram = inputs @ inputs.T / inputs.shape[1]
    kern = np.stack([gram * (1.0 + 0.01 * l) for l in ell])
    vn = np.stack([np.full(N, l / width) for l in ell]) * 2.0 / 3.0
    for q, th in (("kernel", kern), ("V_norm", vn), ("Theta", kern * ell[:, None, None])):
        if q not in config.get("observables", ("kernel", "V_norm", "Theta")):
            continue
        err = 0.02 * np.abs(th) + 1e-3
        meas = th + err * rng.standard_normal(th.shape)
        out[f"theory/{q}"], out[f"measured/{q}"], out[f"stderr/{q}"] = th, meas, err
        out[f"z/{q}"] = zscores(th, meas, err)
    work = float(config.get("work_s", 0.0))
    t_end = time.perf_counter() + work
    while time.perf_counter() < t_end:
        pass
    return out


def execute_point(point_fn: PointFn, config: dict[str, Any], inputs: np.ndarray,
                  threads: int = 1) -> dict[str, Any]:
    """Run one point on a worker: never raises; returns status, arrays, error, timing, host."""
    try:
        import torch
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover
        pass
    t0 = time.perf_counter()
    try:
        arrays = {k: np.ascontiguousarray(v) for k, v in point_fn(config, inputs).items()}
        status, error = "ok", None
    except Exception as exc:  # noqa: BLE001  (a failed point is recorded, the study goes on)
        arrays, status = {}, "failed"
        tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
        error = f"{type(exc).__name__}: {exc}\n" + "".join(tb[-4:])
    return {"status": status, "arrays": arrays, "error": error,
            "compute_s": time.perf_counter() - t0, "host": socket.gethostname()}
