"""Study files: a grid (and/or list) of MLP configurations, validated before anything runs.

A study file is TOML (stdlib ``tomllib``) or YAML (needs PyYAML).  Layout (see docs/studies.md)::

    [study]                 # name, description, output (folder, relative to the current dir)
    [defaults]              # point keys shared by every point
    [grid]                  # point keys → list of values; the Cartesian product is taken
    [[points]]              # explicit points (each may override defaults); added to the grid
    [inputs]                # generated (n_inputs, input_dim, seed, distribution) or file = "x.npy"
    [run]                   # observables, order, device, chunk_size

Point keys: activation, width, depth, C_b, C_W (numbers, or both "critical"), parameterization,
residual (strength γ; 0 = plain MLP), residual_xi, ensemble, seed, output_width.

Every problem found raises :class:`~deepeft.core.errors.ParameterError` naming the offending key
(with its section and the file) and what is allowed.
"""
from __future__ import annotations

import hashlib
import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core import quantities as _quantities
from ..core.errors import ParameterError
from ..core.provenance import canonical_json, point_key  # noqa: F401  (re-exported: the key of a study point)

#: quantity names a study may ask for: every quantity of the registry (deepeft.core.quantities),
#: including ones registered after import; old names are accepted with a DeprecationWarning
QUANTITIES = _quantities.names()
ORDERS = ("1/n", "infinite")
PARAMETERIZATIONS = ("ntk", "standard")
SCHEMA = 1

TOP_LEVEL_KEYS = ("study", "defaults", "grid", "points", "inputs", "run")
STUDY_KEYS = ("name", "description", "output")
INPUT_KEYS = ("kind", "n_inputs", "input_dim", "seed", "distribution", "file")
INPUT_DISTRIBUTIONS = ("gaussian", "sphere")
RUN_KEYS = ("observables", "order", "device", "chunk_size", "threads_per_point")

#: point key → (type description, default).  ``None`` default = required.
POINT_KEYS: dict[str, tuple[str, Any]] = {
    "activation": ("an activation name, e.g. 'tanh', 'relu', 'leaky_relu:0.1'", None),
    "width": ("an integer >= 1 (hidden width) or a list of depth-1 hidden widths", None),
    "depth": ("an integer >= 1 (number of weight layers)", None),
    "C_b": ("a number >= 0 or 'critical'", "critical"),
    "C_W": ("a number > 0 or 'critical'", "critical"),
    "parameterization": ("'ntk' or 'standard'", "ntk"),
    "residual": ("a number >= 0 (residual strength gamma; 0 = no skip connections)", 0.0),
    "residual_xi": ("a number >= 0 (skip-connection weight xi)", 1.0),
    "ensemble": ("an integer >= 2 (number of networks sampled)", 256),
    "seed": ("an integer >= 0", 0),
    "output_width": ("an integer >= 1", 1),
}

DEFAULT_OBSERVABLES = ("kernel", "V_norm", "Theta")


def _err(where: str, key: str, value: Any, allowed: str, hint: str = "") -> ParameterError:
    name = f"{where}.{key}" if where else key
    return ParameterError(name, value, allowed, hint)


def _check_keys(where: str, table: Any, allowed: tuple[str, ...] | list[str], source: str) -> dict:
    if not isinstance(table, dict):
        raise ParameterError(where, type(table).__name__, "a table (key = value section)", f"in {source}")
    for k in table:
        if k not in allowed:
            raise _err(where, k, table[k], "keys: " + ", ".join(allowed), f"unknown key in {source}")
    return table


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _check_point_value(where: str, key: str, v: Any, source: str) -> Any:
    """Type/range check of one value of a point key; returns the normalised value."""
    allowed = POINT_KEYS[key][0]

    def bad():
        return _err(where, key, v, allowed, f"in {source}")

    if key == "activation":
        if not isinstance(v, str):
            raise bad()
        from ..core.activations import get_activation
        try:
            return get_activation(v).name
        except ParameterError as exc:
            raise _err(where, key, v, exc.allowed, f"in {source}") from None
    if key == "width":
        if _is_int(v):
            if v < 1:
                raise bad()
            return int(v)
        if isinstance(v, (list, tuple)) and all(_is_int(w) and w >= 1 for w in v):
            return [int(w) for w in v]
        raise bad()
    if key in ("depth", "output_width"):
        if not _is_int(v) or v < 1:
            raise bad()
        return int(v)
    if key == "ensemble":
        if not _is_int(v) or v < 2:
            raise bad()
        return int(v)
    if key == "seed":
        if not _is_int(v) or v < 0:
            raise bad()
        return int(v)
    if key in ("C_b", "C_W"):
        if isinstance(v, str):
            if v.strip().lower() != "critical":
                raise bad()
            return "critical"
        if not _is_num(v) or not np.isfinite(v) or (v <= 0 if key == "C_W" else v < 0):
            raise bad()
        return float(v)
    if key == "parameterization":
        if v not in PARAMETERIZATIONS:
            raise bad()
        return v
    if key in ("residual", "residual_xi"):
        if not _is_num(v) or not np.isfinite(v) or v < 0:
            raise bad()
        return float(v)
    raise AssertionError(key)  # pragma: no cover


# ----------------------------------------------------------------------------------------------
@dataclass
class InputsSpec:
    kind: str = "generated"
    n_inputs: int = 2
    input_dim: int = 8
    seed: int = 0
    distribution: str = "sphere"
    file: str | None = None

    def array(self) -> np.ndarray:
        """The (N, n_0) float64 inputs shared by every point of the study."""
        if self.kind == "file":
            return _load_inputs_file(Path(self.file))
        rng = np.random.default_rng(self.seed)
        x = rng.standard_normal((self.n_inputs, self.input_dim))
        if self.distribution == "sphere":  # |x|²/n_0 = 1 for every input
            x *= np.sqrt(self.input_dim) / np.linalg.norm(x, axis=1, keepdims=True)
        return x

    def to_dict(self) -> dict:
        if self.kind == "file":
            return {"kind": "file", "file": str(self.file)}
        return {"kind": "generated", "n_inputs": self.n_inputs, "input_dim": self.input_dim,
                "seed": self.seed, "distribution": self.distribution}


def _load_inputs_file(path: Path) -> np.ndarray:
    if not path.exists():
        raise ParameterError("inputs.file", str(path), "an existing .npy, .csv or .txt file")
    try:
        if path.suffix == ".npy":
            a = np.load(path, allow_pickle=False)
        elif path.suffix == ".csv":
            a = np.loadtxt(path, delimiter=",", ndmin=2)
        else:
            a = np.loadtxt(path, ndmin=2)
    except Exception as exc:  # noqa: BLE001  (any parse failure is a user error)
        raise ParameterError("inputs.file", str(path), "a numeric (N, input_dim) array file", str(exc)) from None
    from ..core.spec import validate_inputs
    return validate_inputs(a, name="inputs.file")


@dataclass
class RunOptions:
    observables: tuple[str, ...] = DEFAULT_OBSERVABLES
    order: str = "1/n"
    device: str = "cpu"
    chunk_size: int | None = None
    threads_per_point: int = 1

    def to_dict(self) -> dict:
        return {"observables": list(self.observables), "order": self.order, "device": self.device,
                "chunk_size": self.chunk_size, "threads_per_point": self.threads_per_point}


@dataclass
class Study:
    """A validated study: name, shared inputs, run options and the list of points."""

    name: str
    description: str
    output: str | None
    inputs: InputsSpec
    run: RunOptions
    points: list[dict[str, Any]]  # normalised point keys (before critical resolution)
    source: str = "<dict>"
    text: str = ""
    _inputs_cache: np.ndarray | None = field(default=None, repr=False)

    def input_array(self) -> np.ndarray:
        if self._inputs_cache is None:
            self._inputs_cache = self.inputs.array()
        return self._inputs_cache

    def output_dir(self, out: str | os.PathLike | None = None) -> Path:
        if out is not None:
            return Path(out)
        if self.output:
            return Path(self.output)
        return Path(f"{self.name}-results")

    def point_configs(self) -> list[dict[str, Any]]:
        """The full configuration of every point (critical C_b/C_W resolved, spec built and
        checked).  Raises ParameterError naming the point if any point is invalid."""
        x = self.input_array()
        inputs_hash = array_sha256(x)
        out = []
        for i, p in enumerate(self.points):
            try:
                out.append(resolve_point(p, self.run, x, inputs_hash))
            except ParameterError as exc:
                label = ", ".join(f"{k}={p[k]!r}" for k in ("activation", "width", "depth", "C_b", "C_W") if k in p)
                base = f"{exc.name}={exc.value!r} is invalid: allowed {exc.allowed}"
                hint = str(exc)[len(base):].lstrip(". ") if str(exc).startswith(base) else ""
                hint = f"{hint} (in {self.source})" if hint else f"in {self.source}"
                raise ParameterError(f"point {i} ({label}): {exc.name}", exc.value, exc.allowed, hint) from None
        return out


def array_sha256(a: np.ndarray) -> str:
    a = np.ascontiguousarray(a, dtype=np.float64)
    h = hashlib.sha256()
    h.update(str(a.shape).encode())
    h.update(a.tobytes())
    return h.hexdigest()


def critical_values(activation: str) -> tuple[float, float]:
    """(C_b, C_W) at criticality for an activation, from :mod:`deepeft.theory`."""
    try:
        from .. import theory
        crit = theory.criticality(activation)
    except (ImportError, AttributeError) as exc:
        raise ParameterError("C_b/C_W", "critical", "numbers (deepeft.theory.criticality is unavailable)",
                             str(exc)) from None
    if getattr(crit, "exists", True) is False:
        raise ParameterError("C_b/C_W", "critical", f"numbers for {activation}", getattr(crit, "message", ""))
    if isinstance(crit, dict):
        return float(crit["C_b"]), float(crit["C_W"])
    if hasattr(crit, "C_b") and hasattr(crit, "C_W"):
        return float(crit.C_b), float(crit.C_W)
    C_b, C_W = crit[:2]
    return float(C_b), float(C_W)


def resolve_point(p: dict[str, Any], run: RunOptions, x: np.ndarray, inputs_hash: str) -> dict[str, Any]:
    """Full canonical configuration of one point: what the result depends on, nothing else."""
    from ..core.spec import MLPSpec

    cb, cw = p["C_b"], p["C_W"]
    if (cb == "critical") != (cw == "critical"):
        raise ParameterError("C_b/C_W", (cb, cw), "both numbers, or both 'critical'")
    init = "critical" if cb == "critical" else "custom"
    residual = None
    if p["residual"] > 0:
        residual = (p["residual_xi"], p["residual"])
    kw = dict(output_width=p["output_width"], parameterization=p["parameterization"], residual=residual)
    if init == "critical":
        cb, cw = critical_values(p["activation"])
        from ..theory import critical_spec  # per-layer C_W for critical residual networks
        spec = critical_spec(p["activation"], p["depth"], p["width"], x.shape[1], **kw)
    else:
        spec = MLPSpec.make(p["activation"], p["depth"], p["width"], x.shape[1], C_W=cw, C_b=cb, **kw)
    width = p["width"] if isinstance(p["width"], int) else list(p["width"])
    return {
        "schema": SCHEMA,
        "activation": spec.activation.name,
        "width": width,
        "depth": spec.depth,
        "init": init,
        "C_b": float(cb),
        "C_W": float(cw),
        "parameterization": p["parameterization"],
        "residual": p["residual"],
        "residual_xi": p["residual_xi"] if p["residual"] > 0 else None,
        "ensemble": p["ensemble"],
        "seed": p["seed"],
        "output_width": p["output_width"],
        "spec": spec.to_dict(),
        "inputs_sha256": inputs_hash,
        "n_inputs": int(x.shape[0]),
        "input_dim": int(x.shape[1]),
        "observables": sorted(run.observables),
        "order": run.order,
        "device": run.device,
        "chunk_size": run.chunk_size,
    }


# ----------------------------------------------------------------------------------------------
def _read_text(path: Path) -> tuple[dict, str]:
    if not path.exists():
        raise ParameterError("study file", str(path), "an existing .toml, .yaml or .yml file")
    text = path.read_text()
    return _parse_text(text, path.suffix.lower(), str(path)), text


def _parse_text(text: str, suffix: str, source: str) -> dict:
    if suffix == ".toml":
        import tomllib
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ParameterError("study file", source, "valid TOML", str(exc)) from None
    if suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ParameterError("study file", source, "a .toml file (YAML needs PyYAML: pip install pyyaml)") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ParameterError("study file", source, "valid YAML", str(exc)) from None
        return {} if data is None else data
    raise ParameterError("study file", source, "a file ending in .toml, .yaml or .yml")


def study_from_text(text: str, source: str) -> Study:
    """The study as stored with its results (``meta.study_text``; inputs files relative to the
    folder of ``source``, the file it was read from)."""
    path = Path(source)
    data = _parse_text(text, path.suffix.lower(), source)
    study = parse_study(data, source=source, base_dir=path.parent, default_name=path.stem)
    study.text = text
    return study


def load_study_file(path: str | os.PathLike) -> Study:
    """Read and validate a study file (TOML or YAML).  Raises ParameterError on any problem."""
    path = Path(path)
    data, text = _read_text(path)
    study = parse_study(data, source=str(path), base_dir=path.parent, default_name=path.stem)
    study.text = text
    return study


def parse_study(data: dict, *, source: str = "<dict>", base_dir: Path | None = None,
                default_name: str = "study") -> Study:
    """Validate a study given as a dict (the parsed file)."""
    if not isinstance(data, dict):
        raise ParameterError("study file", type(data).__name__, "a mapping of sections", f"in {source}")
    for k in data:
        if k not in TOP_LEVEL_KEYS:
            raise ParameterError(k, data[k], "sections: " + ", ".join(TOP_LEVEL_KEYS), f"unknown section in {source}")

    meta = _check_keys("study", data.get("study", {}), STUDY_KEYS, source)
    for k in STUDY_KEYS:
        if k in meta and not isinstance(meta[k], str):
            raise _err("study", k, meta[k], "a string", f"in {source}")
    name = meta.get("name", default_name)
    if not name or any(c in name for c in "/\\"):
        raise _err("study", "name", name, "a non-empty name without slashes", f"in {source}")

    # inputs -------------------------------------------------------------------------------
    inp = _check_keys("inputs", data.get("inputs", {}), INPUT_KEYS, source)
    kind = inp.get("kind", "file" if "file" in inp else "generated")
    if kind not in ("generated", "file"):
        raise _err("inputs", "kind", kind, "'generated' or 'file'", f"in {source}")
    if kind == "file":
        extra = [k for k in inp if k not in ("kind", "file")]
        if extra:
            raise _err("inputs", extra[0], inp[extra[0]], "only 'file' with kind = 'file'", f"in {source}")
        if not isinstance(inp.get("file"), str):
            raise _err("inputs", "file", inp.get("file"), "a path (string) to a .npy/.csv/.txt file", f"in {source}")
        f = Path(inp["file"])
        if not f.is_absolute() and base_dir is not None:
            f = base_dir / f
        inputs = InputsSpec(kind="file", file=str(f))
    else:
        if "file" in inp:
            raise _err("inputs", "file", inp["file"], "absent when kind = 'generated'", f"in {source}")
        vals = {}
        for k, lo in (("n_inputs", 1), ("input_dim", 1), ("seed", 0)):
            if k in inp:
                if not _is_int(inp[k]) or inp[k] < lo:
                    raise _err("inputs", k, inp[k], f"an integer >= {lo}", f"in {source}")
                vals[k] = int(inp[k])
        dist = inp.get("distribution", "sphere")
        if dist not in INPUT_DISTRIBUTIONS:
            raise _err("inputs", "distribution", dist, " or ".join(repr(d) for d in INPUT_DISTRIBUTIONS), f"in {source}")
        inputs = InputsSpec(kind="generated", distribution=dist, **vals)

    # run options --------------------------------------------------------------------------
    r = _check_keys("run", data.get("run", {}), RUN_KEYS, source)
    obs = r.get("observables", list(DEFAULT_OBSERVABLES))
    if isinstance(obs, str):
        obs = [obs]
    known = _quantities.names()
    if not isinstance(obs, list) or not obs:
        raise _err("run", "observables", obs, "a non-empty list of: " + ", ".join(known), f"in {source}")
    for o in obs:
        if not isinstance(o, str) or not _quantities.is_registered(o):
            raise _err("run", "observables", o, "one of: " + ", ".join(known), f"in {source}")
    obs = [_quantities.canonical(o, stacklevel=3) for o in obs]
    order = r.get("order", "1/n")
    if order not in ORDERS:
        raise _err("run", "order", order, "'1/n' or 'infinite'", f"in {source}")
    device = r.get("device", "cpu")
    if not isinstance(device, str):
        raise _err("run", "device", device, "a torch device string such as 'cpu' or 'cuda'", f"in {source}")
    chunk = r.get("chunk_size")
    if chunk is not None and (not _is_int(chunk) or chunk < 1):
        raise _err("run", "chunk_size", chunk, "an integer >= 1", f"in {source}")
    tpp = r.get("threads_per_point", 1)
    if not _is_int(tpp) or tpp < 1:
        raise _err("run", "threads_per_point", tpp, "an integer >= 1", f"in {source}")
    run = RunOptions(tuple(dict.fromkeys(obs)), order, device, chunk, int(tpp))

    # points -------------------------------------------------------------------------------
    allowed = tuple(POINT_KEYS)
    defaults = _check_keys("defaults", data.get("defaults", {}), allowed, source)
    defaults = {k: _check_point_value("defaults", k, v, source) for k, v in defaults.items()}

    points: list[dict] = []
    if "grid" in data:
        grid = _check_keys("grid", data["grid"], allowed, source)
        if not grid:
            raise ParameterError("grid", {}, "at least one key with a non-empty list of values", f"in {source}")
        axes = []
        for k, vals in grid.items():
            if k == "width" and isinstance(vals, list) and vals and all(isinstance(v, list) for v in vals):
                pass  # list of width lists
            elif not isinstance(vals, list):
                vals = [vals]
            if not vals:
                raise _err("grid", k, vals, "a non-empty list of values", f"empty grid axis in {source}")
            axes.append((k, [_check_point_value("grid", k, v, source) for v in vals]))
        for combo in itertools.product(*(v for _, v in axes)):
            points.append({**defaults, **dict(zip((k for k, _ in axes), combo))})
    if "points" in data:
        plist = data["points"]
        if not isinstance(plist, list) or not plist:
            raise ParameterError("points", plist, "a non-empty list of tables ([[points]] in TOML)", f"in {source}")
        for i, p in enumerate(plist):
            _check_keys(f"points[{i}]", p, allowed, source)
            points.append({**defaults, **{k: _check_point_value(f"points[{i}]", k, v, source) for k, v in p.items()}})
    if not points:
        raise ParameterError("grid/points", None, "a [grid] section or [[points]] entries defining at least one point",
                             f"in {source}")
    for i, p in enumerate(points):
        for k, (_, default) in POINT_KEYS.items():
            if k not in p:
                if default is None:
                    raise ParameterError(k, None, POINT_KEYS[k][0],
                                         f"point {i} has no '{k}': set it in [defaults], [grid] or the point, in {source}")
                p[k] = default
    study = Study(name=name, description=meta.get("description", ""), output=meta.get("output"),
                  inputs=inputs, run=run, points=points, source=source)
    study.input_array()  # validates an inputs file now
    return study
