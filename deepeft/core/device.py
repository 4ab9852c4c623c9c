"""Devices and dtypes: the one place that turns a user's ``device=`` / ``dtype=`` into torch objects."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .errors import ParameterError


def resolve_device(device: Any) -> torch.device:
    """``None`` (→ CPU), ``'cpu'``, ``'cuda'``, ``'cuda:K'`` or a :class:`torch.device`; CUDA must exist."""
    if device is None:
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ParameterError("device", device, "'cpu', 'cuda', 'cuda:K' or a torch.device") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ParameterError("device", str(device), "'cpu' (CUDA was requested but CUDA is not available on this "
                                 f"machine: torch {torch.__version__} reports torch.cuda.is_available() = False)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ParameterError("device", str(device), f"cuda:0 … cuda:{torch.cuda.device_count() - 1}")
    elif dev.type != "cpu":
        raise ParameterError("device", str(device), "'cpu' or 'cuda'")
    return dev


def resolve_dtype(dtype: Any) -> torch.dtype:
    """torch.float32/float64, their numpy types, or a name ('float32', 'double', 'fp64', …)."""
    table = {"float32": torch.float32, "float64": torch.float64, "single": torch.float32,
             "double": torch.float64, "fp32": torch.float32, "fp64": torch.float64}
    if isinstance(dtype, str):
        if dtype.lower() not in table:
            raise ParameterError("dtype", dtype, "'float32' or 'float64'")
        return table[dtype.lower()]
    if dtype in (torch.float32, torch.float64):
        return dtype
    if dtype in (np.float32, np.float64):
        return torch.float32 if dtype is np.float32 else torch.float64
    raise ParameterError("dtype", dtype, "torch.float32 or torch.float64")
