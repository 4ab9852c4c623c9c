"""The study report's headline (issue 11, item 6): layer 1 is deterministic, so its z-scores are
compared exactly — max|z| is finite and what ``compare`` says, and the z histogram has no ±6
spikes from entries whose standard error is rounding noise."""
from __future__ import annotations

import re

import numpy as np
import pytest

from conftest import REAL_STUDY
from deepeft.core import quantities as Q
from deepeft.ensemble import compare, measure
from deepeft.report.study_report import points_table, statistical_z, write_report, z_summary
from deepeft.studies import Store, load_study, run_study
from deepeft.theory import predict

# the tests' small real study, critical points only, at L/n = 0.25
QUICK = (REAL_STUDY.split("[[points]]")[0].replace('name = "tiny"', 'name = "quick-headline"')
         .replace("width = [8, 16]", "width = [16]").replace("ensemble = 64", "ensemble = 128"))
assert "width = [16]" in QUICK and "ensemble = 128" in QUICK
OBS = ("kernel", "V_norm", "Theta")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    d = tmp_path_factory.mktemp("headline")
    (d / "q.toml").write_text(QUICK)
    s = run_study(d / "q.toml", d / "out", progress=False)
    assert s.failed == 0
    return d / "out"


def test_headline_max_z_is_finite_and_what_compare_says(store):
    from deepeft.core.spec import MLPSpec
    df = load_study(store)
    with Store(store, create=False, readonly=True) as st:
        x = st.get_inputs(df["config"].iloc[0]["inputs_sha256"])
    for _, row in df.iterrows():
        cfg = row["config"]
        spec = MLPSpec.from_dict(cfg["spec"])
        th = predict(spec, x, order=cfg["order"])
        ms = measure(spec, x, ensemble=cfg["ensemble"], seed=cfg["seed"], quantities=OBS + ("histogram",))
        cmp = compare(th, ms, OBS, entries="all")
        for q in OBS:
            last, mx, mismatches = z_summary(row, q)
            assert mismatches == 0 and mx is not None and np.isfinite(mx)
            assert mx == pytest.approx(cmp.max_abs_z(q), rel=1e-12, abs=1e-12)
            assert mx < 6  # L/n = 0.25 at these sizes: the 1/n theory holds
            # the deterministic first layer agrees exactly: z = 0, not ±inf or 1e14
            assert (row[f"zstatus/{q}"][0] == Q.EXACT).all() and (row[f"z/{q}"][0] == 0).all()
            assert int(row[f"breakdown/{q}"][0]) == (cmp.breakdown[q] or 0)
    table = points_table(df, list(OBS))
    assert "∞" not in table and not re.search(r"\de\+?1\d", table)


def test_histogram_has_no_spikes_from_deterministic_entries(store):
    df = load_study(store)
    for q in OBS:
        zs = np.concatenate([statistical_z(r, q) for _, r in df.iterrows()])
        n_total = sum(r[f"z/{q}"].size for _, r in df.iterrows())
        n_layer1 = sum(r[f"z/{q}"][0].size for _, r in df.iterrows())
        assert zs.size <= n_total - n_layer1  # the deterministic layer is not in the histogram
        assert np.all(np.abs(zs) < 6)  # nothing clipped to the ±6 edges


def test_old_stores_with_infinite_layer_one_z_get_the_same_headline(store, tmp_path):
    """Stores written before the rule (z = ±inf or ~1e14 at layer 1, no zstatus) are read by the rule."""
    import shutil
    old = tmp_path / "old"
    shutil.copytree(store, old)
    df = load_study(old)
    with Store(old) as st:
        for _, row in df.iterrows():
            arrays = {c: row[c] for c in df.columns if "/" in c and isinstance(row[c], np.ndarray)
                      and not c.startswith(("zstatus/", "breakdown/", "phase/"))}
            for q in OBS:
                z = arrays[f"z/{q}"].copy()
                z[0] = np.where(np.arange(z[0].size).reshape(z[0].shape) % 2, np.inf, 5.4e14)
                arrays[f"z/{q}"] = z
            st.write_point(row["key"], idx=int(row["idx"]), config=row["config"], version=row["version"], arrays=arrays)
    new, legacy = load_study(store), load_study(old)
    for (_, a), (_, b) in zip(new.iterrows(), legacy.iterrows()):
        for q in OBS:
            assert z_summary(a, q) == z_summary(b, q)
    page = write_report(old).read_text()
    rows = page[page.index('<table class="points">'):]
    assert "∞" not in rows and "5.4e+14" not in rows
