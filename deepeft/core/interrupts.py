"""Ctrl-C (SIGINT) and SIGTERM for long loops: the sampler driver and the study runner share this."""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager


@contextmanager
def catch_interrupts(*, raise_now: bool, signals: tuple = (signal.SIGINT, signal.SIGTERM)):
    """Within the block, the given signals set ``state["hit"] = True``; with ``raise_now`` they also
    raise KeyboardInterrupt at once, else the loop takes the interrupt at its next safe point (the
    sampler: save a checkpoint, then raise).  A KeyboardInterrupt raised while a finalizer runs
    (e.g. a Dask future's ``__del__``) is swallowed by Python ("Exception ignored in …"), so loops
    check the flag too.  Outside the main thread signals cannot be caught: the block runs unchanged."""
    state = {"hit": False}
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def handler(signum, frame):
        state["hit"] = True
        if raise_now:
            raise KeyboardInterrupt

    old = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield state
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)
