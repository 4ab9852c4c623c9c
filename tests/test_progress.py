"""Progress bars are on by default where a person watches (a terminal), silent elsewhere, and
warnings raised while a bar is open are printed above it, not into its line."""
import io
import sys
import warnings

import pytest

from deepeft.core.errors import ParameterError
from deepeft.core.progress import check_progress, progress_bar


def test_auto_is_silent_off_a_terminal(capsys):
    with progress_bar(10, "work") as bar:  # pytest's captured stderr is not a terminal
        for _ in range(10):
            bar.update(1)
    assert capsys.readouterr().err == ""


def test_forced_bar_and_warnings_above_it(capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        with progress_bar(4, "work", progress=True) as bar:
            bar.update(2)
            warnings.warn("something to say", UserWarning)
            bar.update(2)
    err = capsys.readouterr().err
    assert "work:" in err and "something to say" in err
    # the warning owns its line: the bar is cleared before it and redrawn after (no bar text beside it)
    lines = err.replace("\r", "\n").split("\n")
    assert any("UserWarning: something to say" in ln for ln in lines)
    assert not any("work:" in ln and "something to say" in ln for ln in lines)


def test_warning_hook_restored():
    before = warnings.showwarning
    with progress_bar(1, "work", progress=True):
        pass
    assert warnings.showwarning is before


@pytest.mark.parametrize("bad", ["yes", 2, None])
def test_bad_progress_value(bad):
    with pytest.raises(ParameterError, match="progress"):
        check_progress(bad)


def test_callable_progress_allowed_where_asked():
    f = lambda done, total: None  # noqa: E731
    assert check_progress(f, allow_callable=True) is f
    with pytest.raises(ParameterError):
        check_progress(f)


def test_measure_default_is_auto_and_silent_here(capsys):
    import numpy as np

    from deepeft.ensemble import measure
    from deepeft.theory import critical_spec

    spec = critical_spec("tanh", depth=2, width=8, input_dim=4)
    x = np.random.default_rng(0).standard_normal((2, 4))
    a = measure(spec, x, ensemble=64, seed=0)  # default 'auto': no terminal here, so no bar
    assert capsys.readouterr().err == ""
    b = measure(spec, x, ensemble=64, seed=0, progress=True)
    assert "ensemble" in capsys.readouterr().err
    np.testing.assert_array_equal(a["kernel"], b["kernel"])  # the bar changes no number
    with pytest.raises(ParameterError, match="progress"):
        measure(spec, x, ensemble=64, progress="yes")
