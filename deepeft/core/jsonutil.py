"""One conversion of results to JSON-ready Python objects (used by every ``to_dict`` and ``--json``)."""
from __future__ import annotations

import math

import numpy as np


def to_jsonable(x):
    """Nested dicts/lists/arrays/NumPy scalars → plain Python; non-finite floats → None (JSON has no NaN)."""
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return to_jsonable(x.tolist())
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return v if math.isfinite(v) else None
    if isinstance(x, np.integer):
        return int(x)
    return x
