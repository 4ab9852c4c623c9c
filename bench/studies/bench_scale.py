"""1000-point studies: time and peak memory of ``load_study`` and of the HTML report.

The store is built to look like a real one — every point holds the arrays ``compute_point``
writes (theory/measured/stderr/z/zstatus/breakdown per observable, the phase boundary, the output
histogram: ~30 arrays): 8 real points (relu/tanh × n = 16, 32 × L = 8, 12 is 8 configurations;
M = 64, 8-dim inputs) are computed by the engines, then stored under 125 seeds each (the
configuration's seed differs, the arrays are those of the real point) — 1000 records.  Each timing
runs in a fresh interpreter so that its peak RSS is its own.

Usage: python bench/studies/bench_scale.py [N_POINTS]
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

STUDY = """
[study]
name = "scale"
[inputs]
n_inputs = 3
input_dim = 8
[run]
observables = ["kernel", "V_norm", "Theta"]
[defaults]
ensemble = 64
[grid]
activation = ["relu", "tanh"]
width = [16, 32]
depth = [8, 12]
"""

PROBE = textwrap.dedent("""
    import json, resource, sys, time
    t0, c0 = time.perf_counter(), time.process_time()
    what, out = sys.argv[1], sys.argv[2]
    if what == "load":
        from deepeft.studies import load_study
        t0, c0 = time.perf_counter(), time.process_time()
        n = len(load_study(out))
    else:
        from deepeft.report.study_report import write_report
        t0, c0 = time.perf_counter(), time.process_time()
        n = write_report(out, html_path=sys.argv[3]).stat().st_size
    print(json.dumps({"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0, "n": n,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
""")


def build(out: Path, n_points: int) -> float:
    from deepeft.studies import Store, load_study, run_study
    from deepeft.studies.studyfile import parse_study
    import tomllib

    study = parse_study(tomllib.loads(STUDY), source="scale.toml")
    study.text = STUDY
    run_study(study, out / "seed", progress=False)
    real = load_study(out / "seed")
    arrays = [{c: r[c] for c in real.columns if "/" in c and r[c] is not None} for _, r in real.iterrows()]
    t0 = time.perf_counter()
    keys = []
    with Store(out / "big") as st:
        for k, v in Store(out / "seed", create=False, readonly=True).meta().items():
            if k not in ("schema", "planned_keys", "planned_idx", "planned_at"):
                st.set_meta(k, v)
        for (sha,) in Store(out / "seed", create=False, readonly=True).conn.execute("SELECT sha256 FROM inputs"):
            st.put_inputs(sha, Store(out / "seed", create=False, readonly=True).get_inputs(sha))
        for i in range(n_points):
            row = real.iloc[i % len(real)]
            cfg = {**row["config"], "seed": i // len(real)}
            key = f"{i:064x}"
            keys.append(key)
            st.write_point(key, idx=i, config=cfg, version=row["version"], arrays=arrays[i % len(real)],
                           compute_s=float(row["compute_s"]))
        st.set_meta("planned_keys", json.dumps(keys))
        st.set_meta("planned_idx", json.dumps(list(range(n_points))))
        st.set_meta("planned_at", repr(time.time()))
    return time.perf_counter() - t0


def probe(*args) -> dict:
    r = subprocess.run([sys.executable, "-c", PROBE, *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                       check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(n_points: int = 1000, repeats: int = 3) -> dict:
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        build_s = build(d, n_points)
        size = (d / "big" / "study.sqlite").stat().st_size
        loads = [probe("load", d / "big") for _ in range(repeats)]
        reports = [probe("report", d / "big", d / "rep" / "index.html") for _ in range(repeats)]
    med = lambda xs, k: sorted(x[k] for x in xs)[len(xs) // 2]  # noqa: E731
    return {"points": n_points, "store_mb": size / 2**20, "write_s_per_point": build_s / n_points,
            "load_wall_s": med(loads, "wall_s"), "load_cpu_s": med(loads, "cpu_s"),
            "load_peak_rss_mb": med(loads, "peak_rss_mb"),
            "report_wall_s": med(reports, "wall_s"), "report_cpu_s": med(reports, "cpu_s"),
            "report_peak_rss_mb": med(reports, "peak_rss_mb"), "html_bytes": reports[0]["n"],
            "runs": {"load": loads, "report": reports}}


if __name__ == "__main__":
    json.dump(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000), sys.stdout, indent=2)
    print()
