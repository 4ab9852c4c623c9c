"""Provenance of computed results: package version plus a digest of the engine source code, so
that a stored study point is recomputed when the code that produced it changes."""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

_ENGINE_PACKAGES = ("core", "theory", "ensemble")
#: the code behind a learning-coefficient result (deepeft.bayes; its sweep points and sampler checkpoints)
BAYES_PACKAGES = ("core", "bayes")


@lru_cache(maxsize=4)
def engine_digest(packages: tuple[str, ...] = _ENGINE_PACKAGES) -> str:
    """sha256 (first 16 hex digits) over the sources of the given deepeft subpackages (default:
    core, theory and ensemble — the code behind a study point)."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for pkg in packages:
        for f in sorted((root / pkg).rglob("*.py")):
            h.update(str(f.relative_to(root)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def result_version(packages: tuple[str, ...] = _ENGINE_PACKAGES) -> str:
    from . import __version__
    return f"{__version__}+{engine_digest(tuple(packages))}"
