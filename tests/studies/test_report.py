"""The HTML report: figures present, no NaN in the page, renders in headless Chromium."""
from __future__ import annotations

import json
from pathlib import Path
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import REAL_STUDY, SYNTH_STUDY
from deepeft.report.browser import check_rendered, find_chromium
from deepeft.report.study_report import write_report
from deepeft.studies import run_study
from deepeft.studies.points import synthetic_point

CLI = [sys.executable, "-c", "import sys; from deepeft.cli import main; sys.exit(main())"]


def _visible_text(page: str) -> str:
    return re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)


def _check_page(html_path, n_min_figures):
    page = html_path.read_text()
    text = _visible_text(page)
    assert not re.search(r"\bnan\b", text, flags=re.IGNORECASE), "NaN in the page"
    imgs = re.findall(r'<img class="figure"[^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(imgs) >= n_min_figures
    import base64
    for b in imgs:
        assert base64.b64decode(b)[:8] == b"\x89PNG\r\n\x1a\n"
    for fid in ("vertex-collapse", "phase-diagram", "obs-kernel", "obs-V_norm"):
        assert f'id="{fid}"' in page
        assert (html_path.parent / "figures" / f"{fid}.png").stat().st_size > 1000
    assert '<table class="points">' in page
    return page


@pytest.fixture(scope="module")
def real_store(tmp_path_factory):
    d = tmp_path_factory.mktemp("real")
    p = d / "tiny.toml"
    p.write_text(REAL_STUDY)
    s = run_study(p, d / "out", threads=2, progress=False)
    assert s.failed == 0
    return d / "out"


def test_report_real_engines(real_store):
    html_path = write_report(real_store)
    page = _check_page(html_path, 5)
    assert page.count("<tr>") == 1 + 5  # header + one row per point
    assert "critical" in page and "tanh" in page


def test_report_cli_and_show(real_store, tmp_path):
    r = subprocess.run([*CLI, "study", "report", str(real_store), "--html", str(tmp_path / "r.html"), "--json"],
                       capture_output=True, text=True, check=True)
    assert json.loads(r.stdout)["report"] == str(tmp_path / "r.html")
    r = subprocess.run([*CLI, "study", "show", str(real_store), "--json"], capture_output=True, text=True, check=True)
    info = json.loads(r.stdout)
    assert info["ok"] == 5 and info["failed"] == 0 and info["pending"] == 0 and len(info["table"]) == 5


def test_report_with_failed_point_and_no_nan(tmp_path):
    """A failed point and non-finite z-scores must not put NaN in the page."""
    p = tmp_path / "s.toml"
    p.write_text(SYNTH_STUDY)
    run_study(p, tmp_path / "o", point_fn=synthetic_point, progress=False)
    from deepeft.studies import Store, load_study
    df = load_study(tmp_path / "o")
    row = df.iloc[0]
    z = row["z/kernel"].copy()
    z[0, 0, 0], z[-1, 0, 0] = np.nan, np.inf
    with Store(tmp_path / "o") as st:
        arrays = {c: row[c] for c in df.columns if "/" in c and isinstance(row[c], np.ndarray)}
        arrays["z/kernel"] = z
        st.write_point(row["key"], idx=int(row["idx"]), config=row["config"], version=row["version"], arrays=arrays)
        st.write_point("f" * 64, idx=999, config={**row["config"], "seed": 99}, version=row["version"], arrays={},
                       status="failed", error="DivergenceError: kernel overflowed")
    page = _check_page(write_report(tmp_path / "o"), 4)
    assert "DivergenceError" in page and "+∞" in page


def test_report_renders_in_chromium(real_store, tmp_path):
    if find_chromium() is None:
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    html_path = write_report(real_store)
    res = check_rendered(html_path, screenshot=tmp_path / "shot.png")
    assert res["total"] >= 5 and res["rendered"] == res["total"]
    assert res["screenshot"] is not None
    from matplotlib.image import imread
    img = imread(res["screenshot"])
    assert img.shape[0] > 1000 and img[..., :3].std() > 0.05  # not a blank page


@pytest.mark.timeout(120)
def test_report_500_points(tmp_path):
    """A 500-point report renders; its time is a benchmark (bench/studies/bench_report.py), not a test."""
    p = Path(__file__).resolve().parents[2] / "examples" / "report500.toml"
    s = run_study(p, tmp_path / "o", point_fn=synthetic_point, threads=2, progress=False)
    assert s.computed == 500
    _check_page(write_report(tmp_path / "o"), 4)
