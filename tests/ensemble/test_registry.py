"""The observable registry is the only name table; old names are aliases; the one z-score rule."""
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from deepeft.core import quantities as Q
from deepeft.core.errors import ParameterError
from deepeft.ensemble import QUANTITIES, compare, measure
from deepeft.theory import critical_spec, predict


@pytest.fixture(scope="module")
def pair():
    x = np.random.default_rng(0).standard_normal((2, 4))
    x *= 2.0 / np.linalg.norm(x, axis=1, keepdims=True)
    spec = critical_spec("tanh", 3, 16, 4)
    th = predict(spec, x)
    every = tuple(q for q in QUANTITIES if q != "histogram")
    ms = measure(spec, x, ensemble=64, seed=0, quantities=every)
    return spec, x, th, ms


def test_predict_and_measure_names_are_the_registry(pair):
    spec, x, th, ms = pair
    # every quantity predict and measure return is registered under that name ...
    assert set(th.values) <= set(Q.names())
    assert set(ms.values) <= set(Q.names(measured=True)) and set(ms.errors) == set(ms.values)
    # ... and vice versa: every registered theory key is produced by predict, every measured
    # quantity by measure (N = 2 <= 8 inputs: the full V too)
    produced = set(th.values)
    for name in Q.names():
        rec = Q.get(name)
        if isinstance(rec.theory, str):
            assert rec.theory in produced or set(rec.theory_fallbacks) & produced, name
        if rec.theory is not None or rec.derive is not None:
            assert Q.theory_value(th.values, name) is not None, name
    assert set(ms.values) == set(Q.names(measured=True))
    # infinite order: the fallbacks give every quantity that has an O(1) prediction
    th0 = predict(spec, x, order="infinite")
    assert set(th0.values) <= set(Q.names())
    np.testing.assert_array_equal(Q.theory_value(th0.values, "Theta"), th0["Theta"])


def test_theory_keys_used_by_compare(pair):
    _, _, th, ms = pair
    cmp = compare(th, ms, ("Theta", "Theta_var", "NTK_A", "V_pairs", "kurtosis"), entries="all")
    np.testing.assert_array_equal(cmp.arrays["Theta"]["theory"], th["ntk_mean"])  # the 1/n-corrected NTK mean
    tv = cmp.arrays["Theta_var"]["theory"]
    np.testing.assert_array_equal(np.diagonal(tv, axis1=1, axis2=2), th["Theta_var"])
    assert np.isnan(tv[:, 0, 1]).all()  # only Var(Ĥ_αα) is predicted
    np.testing.assert_allclose(cmp.arrays["kurtosis"]["theory"], 3 * th["V_norm"])
    assert set(cmp.breakdown) == {"Theta", "Theta_var", "NTK_A", "V_pairs", "kurtosis"}


def test_old_names_are_aliases_with_a_warning(pair):
    spec, x, th, ms = pair
    for old, new in (("ntk_var", "Theta_var"), ("A", "NTK_A"), ("B", "NTK_B"), ("D", "NTK_D"), ("F", "NTK_F")):
        with pytest.warns(DeprecationWarning, match=new):
            np.testing.assert_array_equal(th[old], th[new])
        with pytest.warns(DeprecationWarning):
            assert old in th
    with pytest.warns(DeprecationWarning):
        np.testing.assert_array_equal(ms.error("A"), ms.errors["NTK_A"])
    with pytest.warns(DeprecationWarning):
        m2 = measure(spec, x, ensemble=64, seed=0, quantities=("ntk_var",))
    assert set(m2.values) == {"Theta_var"}
    np.testing.assert_array_equal(m2["Theta_var"], ms["Theta_var"])  # same seed, same numbers
    with pytest.warns(DeprecationWarning):
        c = compare(th, ms, ("ntk_var",))
    assert set(c.breakdown) == {"Theta_var"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        th["Theta_var"], ms["NTK_B"], th["Theta"]  # registered names: no warning
    from deepeft.studies.studyfile import parse_study
    with pytest.warns(DeprecationWarning):
        st = parse_study({"grid": {"activation": ["tanh"], "width": [8], "depth": [2]},
                          "run": {"observables": ["kernel", "ntk_var"]}})
    assert st.run.observables == ("kernel", "Theta_var")
    with pytest.raises(ParameterError, match="run.observables"):
        parse_study({"grid": {"activation": ["tanh"], "width": [8], "depth": [2]}, "run": {"observables": ["kernal"]}})
    with pytest.raises(ParameterError, match="quantities"):
        measure(spec, x, ensemble=4, quantities=("nope",))


def test_register_validates_records():
    with pytest.raises(ParameterError, match="quantity.name"):
        Q.register(Q.Quantity("kernel", "(L,)", "dup", "k", "k"))
    with pytest.raises(ParameterError, match="derive"):
        Q.register(Q.Quantity("toy", "(L,)", "bad", "t", "t", estimator="derived"))
    with pytest.raises(ParameterError, match="needs"):  # a derived quantity is computed from measured ones
        Q.register(Q.Quantity("toy", "(L,)", "bad", "t", "t", estimator="derived", derive=lambda v: v["K"], needs=("K",)))
    with pytest.raises(ParameterError, match="aliases"):
        Q.register(Q.Quantity("toy", "(L,)", "bad", "t", "t", theory="K", aliases=("ntk_var",)))
    assert not Q.is_registered("toy")


def test_zscore_rule():
    # statistical entries: plain z
    zs = Q.zscore([1.0, 2.0], [1.5, 1.0], [0.5, 0.25])
    np.testing.assert_allclose(zs.z, [1.0, -4.0])
    assert (zs.status == Q.STATISTICAL).all()
    # deterministic entries (SE = 0 or rounding-level): exact-or-not at relative 1e-9
    t = np.array([[1.0, 0.3], [2.0, 0.0]])
    m = t + np.array([[1e-16, -2e-16], [1e-3, 1e-17]])
    s = np.array([[0.0, 4e-17], [0.0, 0.0]])
    zs = Q.zscore(t, m, s)
    assert zs.status.tolist() == [[Q.EXACT, Q.EXACT], [Q.MISMATCH, Q.EXACT]]
    assert zs.z[0, 0] == 0 and zs.z[0, 1] == 0 and np.isnan(zs.z[1, 0])
    assert Q.breakdown_layer(zs, 4.0) == 2
    # undefined entries (non-finite theory, measurement or SE) are never scored
    zs = Q.zscore([np.nan, 1.0], [1.0, 1.0], [0.1, np.nan])
    assert (zs.status == Q.UNDEFINED).all() and np.isnan(zs.z).all()
    # float32 measurements get a float32 tolerance
    assert Q.exact_rtol("float32") > 1e-6 and Q.exact_rtol("float64") == Q.EXACT_RTOL


def test_compare_flags_a_wrong_exact_layer(pair):
    """A deterministic layer that disagrees with the theory is flagged (+inf, breakdown at layer 1),
    one that agrees has z = 0 — not ±inf or 1e14 from rounding noise over rounding noise."""
    _, _, th, ms = pair
    cmp = compare(th, ms, ("kernel",), entries="all")
    first = [r for r in cmp.rows if r["layer"] == 1]
    assert first and all(r["status"] == "exact" and r["z"] == 0.0 for r in first)
    assert np.isfinite(cmp.max_abs_z("kernel"))
    bad = predict(th.spec, th.inputs)
    bad.values["kernel"] = bad.values["kernel"].copy()
    bad.values["kernel"][0] *= 1.001
    cmp = compare(bad, ms, ("kernel",))
    assert cmp.max_abs_z("kernel") == np.inf and cmp.breakdown["kernel"] == 1
    assert "deterministic entry differs" in cmp.to_text()


def test_architecture_walkthrough_runs():
    """docs/architecture.md, "Adding an observable": the example registers, measures and compares."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "architecture.md").read_text()
    section = text[text.index("### Adding an observable"):]
    code = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    try:
        exec(compile(code, "architecture.md", "exec"), {})
    finally:
        Q.unregister("rho")
    assert not Q.is_registered("rho")
