"""Parameter constraints declared once (deepeft.core.validation): the API and the CLI give the same
messages, naming the parameter and what is allowed."""
import numpy as np
import pytest

from deepeft.core.errors import ParameterError
from deepeft.core.validation import AnyOf, Choices, Interval, PerChain, parse_text, validate


def test_intervals_choices_and_messages():
    spec = {"k": Interval(int, 1), "g": Interval(float, 0.0), "e": Interval(float, 0.0, open_low=True),
            "a": Interval(float, 0.0, 1.0, open_high=True), "s": Choices(("x", "y"))}
    assert validate(spec, k=3.0, g=0, e=2, a=0.5, s="x", other=object).keys() == {"k", "g", "e", "a", "s", "other"}
    assert validate(spec, k=np.int64(2))["k"] == 2
    for kw, text in ((dict(k=0), "k=0 is invalid: allowed an integer >= 1"), (dict(k=True), "an integer >= 1"),
                     (dict(g=-1.0), "g=-1.0 is invalid: allowed >= 0"), (dict(e=0.0), "allowed > 0"),
                     (dict(e=float("nan")), "a finite real number"), (dict(a=1.0), "a number >= 0 and < 1"),
                     (dict(s="z"), "s='z' is invalid: allowed one of ('x', 'y')")):
        with pytest.raises(ParameterError, match=text.replace("(", r"\(").replace(")", r"\)")):
            validate(spec, **kw)


def test_per_chain_and_alternatives():
    lr = PerChain(Interval(float, 0.0, open_low=True))
    assert lr.bind(3).check("lr", 1e-3) == [1e-3] * 3
    assert lr.bind(2).check("lr", np.array([1e-3, 2e-3])) == [1e-3, 2e-3]
    with pytest.raises(ParameterError, match="lr.*num_chains=2"):
        lr.bind(2).check("lr", [1e-3])
    with pytest.raises(ParameterError, match="lr=-1"):
        lr.bind(2).check("lr", [1e-3, -1.0])
    burnin = AnyOf((Choices(("auto",)), Interval(int, 0)), "an integer >= 0 or 'auto'")
    assert burnin.check("b", "auto") == "auto" and burnin.check("b", 5) == 5
    # the command line: 'auto' as text, numbers converted, errors naming the flag (unparsable) or the parameter
    assert parse_text(burnin, "--burnin", "AUTO", int) == "auto" and parse_text(burnin, "--burnin", "7", int) == 7
    with pytest.raises(ParameterError, match="--burnin='soon'"):
        parse_text(burnin, "--burnin", "soon", int, name="num_burnin_steps")
    with pytest.raises(ParameterError, match="num_burnin_steps=-3 is invalid: allowed an integer >= 0 or 'auto'"):
        parse_text(burnin, "--burnin", "-3", int, name="num_burnin_steps")


def test_sample_declares_every_setting_once():
    # the API and the CLI read the same declaration; the sampler choice follows the kernel registry
    from deepeft.bayes.kernels import KERNELS
    from deepeft.bayes.samplers import SAMPLE_PARAMS

    assert SAMPLE_PARAMS["sampler"].values() == tuple(KERNELS)
    assert SAMPLE_PARAMS["nbeta"].inner.check("nbeta", 2.0) == 2.0
