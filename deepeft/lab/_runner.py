"""The lab's runner: every problem is a list of parts; each part's arrays go into the embedded store.

A part is a pure function of its JSON configuration.  Its key is the sha256 of (problem, part name,
configuration, result version), so a rerun skips the parts already stored (``status = 'ok'``) and
recomputes a part when its configuration or the code behind it (deepeft.core, .bayes, .lab)
changes.  After the parts, the problem's ``summarize`` turns the stored arrays into a summary dict,
PNG figures, ``NAME.json`` and a short ``NAME.html`` page in the output folder.
"""
from __future__ import annotations

import hashlib
import html
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..core.errors import ParameterError
from ..core.jsonutil import to_jsonable as jsonable

LAB_PACKAGES = ("core", "bayes", "lab")


@dataclass
class Part:
    """One unit of work: ``compute(config) -> {name: array}`` (numbers only; all in the store)."""

    name: str
    config: dict
    compute: Callable[[dict], dict[str, Any]]


@dataclass
class Problem:
    """A lab problem: ``parts(quick)`` lists the work, ``summarize(results, folder, quick)`` reads
    ``results`` {part name: {array name: array}} and returns the summary (it may write figures
    into ``folder`` and list their file names under ``summary['figures']``)."""

    name: str
    title: str
    description: str
    parts: Callable[[bool], list[Part]]
    summarize: Callable[[dict, Path, bool], dict]


@dataclass
class LabResult:
    problem: str
    out: Path
    summary: dict
    computed: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    compute_s: float = 0.0
    files: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return jsonable({"problem": self.problem, "out": str(self.out), "computed": self.computed,
                         "skipped": self.skipped, "compute_s": self.compute_s, "files": self.files,
                         "summary": self.summary})


def part_key(problem: str, part: Part, version: str) -> str:
    blob = json.dumps({"problem": problem, "part": part.name, "config": part.config, "version": version},
                      sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def run(problem: Problem, out: str | os.PathLike | None = None, *, quick: bool = False,
        progress: bool = False) -> LabResult:
    """Compute the unfinished parts of ``problem`` into ``out``/study.sqlite, then write the figures,
    ``NAME.json`` and ``NAME.html``.  Default folder: ``lab-results/NAME`` (``NAME-quick`` with ``quick``)."""
    from ..core.provenance import result_version
    from ..studies.store import Store

    folder = Path(out) if out is not None else Path("lab-results") / (problem.name + ("-quick" if quick else ""))
    if folder.exists() and not folder.is_dir():
        raise ParameterError("out", str(folder), "a folder (it holds study.sqlite, figures, JSON and HTML)")
    folder.mkdir(parents=True, exist_ok=True)
    version = result_version(LAB_PACKAGES)
    parts = problem.parts(quick)
    res = LabResult(problem=problem.name, out=folder, summary={})
    with Store(folder) as store:
        store.set_meta("lab_problem", problem.name)
        store.set_meta("lab_quick", str(bool(quick)))
        done = store.finished_keys()
        for i, part in enumerate(parts):
            key = part_key(problem.name, part, version)
            if key in done:
                res.skipped.append(part.name)
                continue
            if progress:
                print(f"[lab {problem.name}] part {i + 1}/{len(parts)}: {part.name}", flush=True)
            t0 = time.perf_counter()
            arrays = {k: np.asarray(v) for k, v in part.compute(dict(part.config)).items()}
            dt = time.perf_counter() - t0
            store.write_point(key, idx=i, config={"problem": problem.name, "part": part.name, **part.config},
                              version=version, arrays=arrays, compute_s=dt, meta={"part": part.name})
            res.computed.append(part.name)
        keys = {part_key(problem.name, p, version): p.name for p in parts}
        results, times = {}, {}
        for rec in store.records(status="ok"):
            if rec["key"] in keys:
                results[keys[rec["key"]]] = rec["arrays"]
                times[keys[rec["key"]]] = rec["compute_s"] or 0.0
    res.compute_s = float(sum(times.values()))
    summary = problem.summarize(results, folder, quick)
    summary["run_time_cpu_s"] = {"total": res.compute_s, "parts": times}
    summary.setdefault("figures", [])
    res.summary = summary
    jpath = folder / f"{problem.name}.json"
    jpath.write_text(json.dumps(jsonable({"problem": problem.name, "title": problem.title, "quick": quick,
                                          "version": version, **summary}), indent=1))
    hpath = folder / f"{problem.name}.html"
    hpath.write_text(_html_page(problem, summary, quick))
    res.files = {"json": str(jpath), "html": str(hpath), "store": str(folder / "study.sqlite"),
                 "figures": [str(folder / f) for f in summary["figures"]]}
    return res


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if not math.isfinite(v) else f"{v:.5g}"
    if isinstance(v, (list, tuple)) and len(v) <= 12:
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v)


def _html_page(problem: Problem, summary: dict, quick: bool) -> str:
    """A short self-contained page: description, findings, the headline numbers, the figures."""
    e = html.escape
    rows = "".join(f"<tr><td>{e(str(k))}</td><td>{e(_fmt(v))}</td></tr>"
                   for k, v in summary.get("headline", {}).items())
    findings = "".join(f"<li>{e(s)}</li>" for s in summary.get("findings", []))
    figs = "".join(f'<figure><img src="{e(f)}" style="max-width:100%"><figcaption>{e(f)}</figcaption></figure>'
                   for f in summary.get("figures", []))
    t = summary.get("run_time_cpu_s", {}).get("total", float("nan"))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{e(problem.title)}</title></head><body>"
            f"<h1>{e(problem.title)}</h1><p>{e(problem.description)}</p>"
            f"<p>{'quick version' if quick else 'full version'}; compute time of all parts {t:.1f} s (CPU).</p>"
            f"<h2>Findings</h2><ul>{findings}</ul><h2>Numbers</h2><table border='1'>{rows}</table>"
            f"<h2>Figures</h2>{figs}<p>Data: {e(problem.name)}.json and study.sqlite in this folder.</p></body></html>")


def savefig(fig, folder: Path, name: str, figures: list) -> None:
    fig.tight_layout()
    fig.savefig(folder / name, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    figures.append(name)


def start_summary():
    """(pyplot, figure names, headline dict, findings list): what every ``summarize`` fills in."""
    return pyplot(), [], {}, []


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
