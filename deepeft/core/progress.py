"""Progress bars for long work: on by default where a person is watching.

``progress='auto'`` (the default of the long-running functions) shows a tqdm bar on stderr when stderr
is a terminal and nothing otherwise (tqdm's own ``disable=None`` rule); ``True`` always shows one,
``False`` never.  While a bar is open, warnings are written above it (``tqdm.write``) instead of into
the middle of its line.
"""
from __future__ import annotations

import contextlib
import sys
import warnings
from typing import Any, Iterator

from .errors import ParameterError

def check_progress(progress: Any, *, allow_callable: bool = False) -> Any:
    """``'auto'``, ``True`` or ``False`` (or a callable ``f(done, total)`` where allowed)."""
    if isinstance(progress, bool) or (isinstance(progress, str) and progress == "auto"):
        return progress
    if allow_callable and callable(progress):
        return progress
    raise ParameterError("progress", progress, "'auto' (a bar when stderr is a terminal), True or False"
                         + (", or a callable f(done, total)" if allow_callable else ""))


@contextlib.contextmanager
def progress_bar(total: int, desc: str, *, progress: Any = "auto", unit: str = "it", initial: int = 0,
                 leave: bool = False) -> Iterator[Any]:
    """A tqdm bar (or None when ``progress`` is False or a callable), with warnings routed above it."""
    if progress is False or callable(progress):
        yield None
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit=unit, initial=initial, leave=leave, file=sys.stderr,
               disable=None if progress == "auto" else False)
    if bar.disable:
        try:
            yield bar
        finally:
            bar.close()
        return
    shown = warnings.showwarning

    def above_the_bar(message, category, filename, lineno, file=None, line=None):
        tqdm.write(warnings.formatwarning(message, category, filename, lineno, line).rstrip("\n"), file=sys.stderr)

    warnings.showwarning = above_the_bar
    try:
        yield bar
    finally:
        warnings.showwarning = shown
        bar.close()
