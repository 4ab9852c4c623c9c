"""Provenance and identity of computed results: the result version (package version plus a digest of
the engine sources, so that a stored result is recomputed when the code that produced it changes) and
the key of one computation (sha256 of its canonical configuration and that version).  Used by the
study store, the LLC sweep and the sampler checkpoints alike — one hashing convention."""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

_ENGINE_PACKAGES = ("core", "theory", "ensemble")
#: the code behind a learning-coefficient result (deepeft.bayes; its sweep points and sampler checkpoints)
BAYES_PACKAGES = ("core", "bayes")


@lru_cache(maxsize=4)
def engine_digest(packages: tuple[str, ...] = _ENGINE_PACKAGES) -> str:
    """sha256 (first 16 hex digits) over the sources of the given deepeft subpackages (default:
    core, theory and ensemble — the code behind a study point)."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for pkg in packages:
        for f in sorted((root / pkg).rglob("*.py")):
            h.update(str(f.relative_to(root)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def result_version(packages: tuple[str, ...] = _ENGINE_PACKAGES) -> str:
    from .. import __version__
    return f"{__version__}+{engine_digest(tuple(packages))}"


def canonical_json(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False)


def point_key(config: dict[str, Any], version: str | None = None) -> str:
    """sha256 of the canonical configuration and the result version (default: that of the
    theory/ensemble engines, :func:`result_version`): editing an engine recomputes stored points."""
    if version is None:
        version = result_version()
    return hashlib.sha256(f"deepeft {version}\n{canonical_json(config)}".encode()).hexdigest()


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
