"""Checkpoints for long sampling runs: interrupt (Ctrl-C / SIGINT) and resume without losing steps.

``sample(..., checkpoint="run.ckpt")`` (hence ``estimate_llc`` and the CLI's ``--checkpoint``)
writes the complete loop state — chains, generator state, minibatch order, every trace recorded so
far, divergence bookkeeping, the MALA / RMSProp state — every ``checkpoint_every`` steps, when the
run is interrupted (the interrupt is taken at the next step boundary, saved, then re-raised) and
at its last step.  Calling the same run again with the same path resumes from the saved step; with
in-memory data the result is then identical, to the bit, to an uninterrupted run (tested).  With a
DataLoader the loader restarts its iteration on resume (its own shuffling is outside deepeft), so
the continuation is statistically, not bitwise, the same.

A checkpoint is only resumed by the run that wrote it: a fingerprint of the configuration, the
starting weights, the localisation centre, the in-memory data and the sampler code must match, otherwise a
:class:`ParameterError` names the mismatch.  The file is written atomically (temporary file, then
rename) and is kept when the run finishes, so repeating a finished call costs one step.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch

from ..core.errors import ParameterError

FORMAT = 1


def tensor_digest(*tensors: torch.Tensor | None) -> str:
    """sha256 over the bytes, dtypes and shapes of some tensors (None allowed)."""
    h = hashlib.sha256()
    for t in tensors:
        if t is None:
            h.update(b"none")
            continue
        a = t.detach().to("cpu").contiguous()
        h.update(f"{a.dtype}{tuple(a.shape)}".encode())
        h.update(a.view(torch.uint8).numpy().tobytes() if a.numel() else b"")
    return h.hexdigest()


def fingerprint(config: dict[str, Any], digest: str) -> str:
    """The run's identity: its settings, the digest of its starting tensors and the version of the
    sampler code (a checkpoint written by other code would not resume bit-identically)."""
    from ..core.provenance import BAYES_PACKAGES, point_key, result_version

    return point_key({**config, "tensors": digest}, result_version(BAYES_PACKAGES))


def save(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write ``state`` atomically (tensors moved to the CPU)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(_to_cpu({**state, "format": FORMAT}), tmp)
    os.replace(tmp, path)


def load(path: str | os.PathLike, expected_fingerprint: str, config: dict[str, Any]) -> dict[str, Any] | None:
    """The saved state of this run, or None when there is no checkpoint yet."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ParameterError("checkpoint", str(path), f"a checkpoint file written by deepeft ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ParameterError("checkpoint", str(path), "a checkpoint file written by this version of deepeft")
    if state.get("fingerprint") != expected_fingerprint:
        old = state.get("config", {})
        diff = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
        what = f"settings differ: {', '.join(diff)}" if diff else "starting weights, centre or data differ, or the sampler code changed"
        raise ParameterError("checkpoint", str(path), f"a checkpoint of this same run ({what}); delete it or choose another path")
    return state


def _to_cpu(x):
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu")
    if isinstance(x, dict):
        return {k: _to_cpu(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_to_cpu(v) for v in x)
    return x
