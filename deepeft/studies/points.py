"""Point functions: the computation behind one study point.

A point function takes the point's canonical configuration (see
:func:`deepeft.studies.studyfile.resolve_point`) and the study's input array, and returns a dict
of named numpy arrays.  Names are ``"<group>/<quantity>"`` (quantity names: the registry,
:mod:`deepeft.core.quantities`) with groups

- ``theory``    the effective-theory prediction of the quantity (its registry theory key: e.g. the
                NTK mean ``Theta`` is predicted by Θ + Θ1/n on the diagonal at order '1/n'),
- ``measured``  the Monte-Carlo ensemble mean (``deepeft.ensemble.measure``),
- ``stderr``    its standard error,
- ``z``         (measured − theory)/stderr by the one rule of :func:`deepeft.core.quantities.zscore`
                (0 where a deterministic entry agrees exactly, NaN where it does not or is undefined),
- ``zstatus``   per entry: 0 statistical z, 1 exact agreement, 2 exact mismatch, 3 undefined,
- ``breakdown`` [first layer where |z| > 4 or an exact mismatch occurs; 0 = none] (``compare``),
- ``phase``     ``C_b``, ``C_W``: the order-to-chaos boundary χ⊥ = 1 of the point's activation,
- ``hist``      last-layer output histogram of the ensemble (``edges``, ``density``, ``counts``,
                ``info`` = [layer, input index, number of samples]).

Point functions run on Dask workers, so they must be importable module-level functions.
"""
from __future__ import annotations

import functools
import hashlib
import socket
import time
import traceback
import warnings
from typing import Any, Callable

import numpy as np

PointFn = Callable[[dict, np.ndarray], dict]


#: the z threshold of the stored ``breakdown`` (that of ``deepeft.ensemble.compare``)
BREAKDOWN_Z = 4.0
#: C_b range of the stored phase boundary (the curve is traced for K* ≤ 1e3, so C_b ≤ 1e3)
PHASE_CB_MAX = 1e3


@functools.lru_cache(maxsize=64)
def _phase_boundary(activation: str) -> tuple[np.ndarray, np.ndarray] | None:
    from ..theory.criticality import phase_boundary_curve
    try:
        return phase_boundary_curve(activation, PHASE_CB_MAX)
    except Exception:  # noqa: BLE001  (no boundary computable for this activation: none stored)
        return None


def phase_arrays(activation: str) -> dict[str, np.ndarray]:
    """``phase/C_b``, ``phase/C_W``: the χ⊥ = 1 curve of ``activation`` (empty if none)."""
    r = _phase_boundary(activation)
    return {} if r is None else {"phase/C_b": np.array(r[0], dtype=np.float64), "phase/C_W": np.array(r[1], dtype=np.float64)}


def comparison_arrays(q: str, z: np.ndarray, status: np.ndarray, breakdown: int | None) -> dict[str, np.ndarray]:
    """The stored z, zstatus and breakdown arrays of quantity ``q``."""
    return {f"z/{q}": np.asarray(z, dtype=np.float64), f"zstatus/{q}": np.asarray(status, dtype=np.int8),
            f"breakdown/{q}": np.array([breakdown or 0], dtype=np.int64)}


def compute_point(config: dict[str, Any], inputs: np.ndarray) -> dict[str, np.ndarray]:
    """Theory prediction and ensemble measurement of one point, side by side."""
    from .. import ensemble, theory
    from ..core import quantities as Q
    from ..core.observables import Observables
    from ..core.spec import MLPSpec
    from ..theory.predict import ExpansionRegimeWarning

    spec = MLPSpec.from_dict(config["spec"])
    with warnings.catch_warnings():  # the point stores the measured breakdown beside the theory
        warnings.simplefilter("ignore", ExpansionRegimeWarning)
        th = theory.predict(spec, inputs, order=config["order"])
    kw = {}
    if config.get("chunk_size"):
        kw["chunk_size"] = config["chunk_size"]
    observables = list(dict.fromkeys(Q.canonical(q) for q in config["observables"]))
    wanted = tuple(q for q in observables if Q.get(q).measured)
    if wanted:
        ms = ensemble.measure(spec, inputs, ensemble=config["ensemble"], seed=config["seed"],
                              device=config["device"], quantities=wanted + ("histogram",), **kw)
    else:  # theory-only quantities (K, K1, chi_*): nothing to measure
        ms = Observables(spec, inputs, "ensemble")
    cmp = ensemble.compare(th, ms, wanted, entries="all", z_threshold=BREAKDOWN_Z)
    out: dict[str, np.ndarray] = {}
    for q in observables:
        t = Q.theory_value(th.values, q)
        if t is not None:
            out[f"theory/{q}"] = t
        if q in ms.values:
            out[f"measured/{q}"] = np.asarray(ms.values[q], dtype=np.float64)
            err = ms.errors.get(q)
            if err is not None:
                out[f"stderr/{q}"] = np.asarray(err, dtype=np.float64)
        if q in cmp.arrays:
            a = cmp.arrays[q]
            out.update(comparison_arrays(q, a["z"], a["status"], cmp.breakdown[q]))
    hist = ms.meta.get("histogram")
    if hist:  # last-layer output histogram at input hist["input_index"]
        for k in ("edges", "density", "counts"):
            out[f"hist/{k}"] = np.asarray(hist[k], dtype=np.float64 if k != "counts" else np.int64)
        out["hist/info"] = np.array([hist["layer"], hist["input_index"], hist["n_samples"]], dtype=np.int64)
    # V_norm's theory value is what the 1/n collapse plot needs even if not requested
    if "V_norm" not in observables and "V_norm" in th.values:
        out["theory/V_norm"] = np.asarray(th.values["V_norm"], dtype=np.float64)
    out.update(phase_arrays(config["activation"]))
    return out


def synthetic_point(config: dict[str, Any], inputs: np.ndarray) -> dict[str, np.ndarray]:
    """A cheap, deterministic stand-in for :func:`compute_point` used to test and benchmark the
    runner and store without the engines.  Its numbers are pseudo-random functions of the
    configuration and mean nothing physically.  ``config['work_s']`` (optional) busy-waits that
    long, to emulate compute."""
    from ..core.quantities import zscore

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
        out[f"z/{q}"] = zscore(th, meas, err).z  # (no zstatus/breakdown/phase: readers derive status by the same rule)
    work = float(config.get("work_s", 0.0))
    t_end = time.perf_counter() + work
    while time.perf_counter() < t_end:
        pass
    return out


#: byte alignment of the inputs a point function receives (a cache line; torch's own allocations)
INPUT_ALIGNMENT = 64


def aligned_copy(a: Any, align: int = INPUT_ALIGNMENT) -> Any:
    """A C-contiguous copy of array ``a`` in fresh memory whose address is a multiple of ``align``
    bytes (anything else is returned as it is).  Arrays deserialised on a Dask worker sit at
    arbitrary offsets inside a message buffer, and vectorised kernels round differently on memory
    with another alignment; giving every point the same alignment makes results bit-identical
    wherever the point runs."""
    if not isinstance(a, np.ndarray):
        return a
    buf = np.empty(a.nbytes + align, dtype=np.uint8)
    off = (-buf.ctypes.data) % align
    out = buf[off:off + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


def execute_point(point_fn: PointFn, config: dict[str, Any], inputs: np.ndarray,
                  threads: int = 1) -> dict[str, Any]:
    """Run one point on a worker: never raises; returns status, arrays, error, timing, host.  The
    point function gets its own :func:`aligned_copy` of ``inputs``."""
    try:
        import torch
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover
        pass
    t0 = time.perf_counter()
    try:
        arrays = {k: np.ascontiguousarray(v) for k, v in point_fn(config, aligned_copy(inputs)).items()}
        status, error = "ok", None
    except Exception as exc:  # noqa: BLE001  (a failed point is recorded, the study goes on)
        arrays, status = {}, "failed"
        tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
        error = f"{type(exc).__name__}: {exc}\n" + "".join(tb[-4:])
    return {"status": status, "arrays": arrays, "error": error,
            "compute_s": time.perf_counter() - t0, "host": socket.gethostname()}
