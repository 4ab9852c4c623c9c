"""Provenance of computed results: package version plus a digest of the engine source code, so
that a stored study point is recomputed when the code that produced it changes."""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

_ENGINE_PACKAGES = ("core", "theory", "ensemble")


@lru_cache(maxsize=1)
def engine_digest() -> str:
    """sha256 (first 16 hex digits) over the sources of deepeft.core, .theory and .ensemble."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for pkg in _ENGINE_PACKAGES:
        for f in sorted((root / pkg).rglob("*.py")):
            h.update(str(f.relative_to(root)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def result_version() -> str:
    from . import __version__
    return f"{__version__}+{engine_digest()}"
