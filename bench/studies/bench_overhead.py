"""Per-point overhead of the study runner (store + scheduling) relative to the point's compute.

Runs examples/quickstart.toml (real theory + ensemble engines) into a fresh folder:

- in-process, 1 worker thread (points run one after another): overhead per point =
  (loop wall time − Σ compute) / points, where compute is timed inside the point function;
- a LocalCluster with 2 worker processes: parallel efficiency Σ compute / (2 × loop wall time).

Also times the store alone (one transaction per point).  Usage: python bench/studies/bench_overhead.py
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> dict:
    from deepeft.studies import load_study_file, run_study

    study = load_study_file(ROOT / "examples" / "quickstart.toml")
    res = {"points": len(study.points), "cpu_count": os.cpu_count()}
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        s = run_study(study, Path(d) / "seq", threads=1, progress=False)
        res["in_process_1thread"] = {
            "total_wall_s": time.perf_counter() - t0, "setup_s": s.setup_s, "loop_s": s.loop_s,
            "compute_s": s.compute_s, "store_s": s.store_s,
            "overhead_per_point_ms": 1e3 * (s.loop_s - s.compute_s) / s.computed,
            "compute_per_point_ms": 1e3 * s.compute_s / s.computed,
            "store_per_point_ms": 1e3 * s.store_s / s.computed,
            "overhead_pct": 100 * (s.loop_s - s.compute_s) / s.compute_s,
            "overhead_incl_setup_pct": 100 * (s.loop_s + s.setup_s - s.compute_s) / s.compute_s,
        }
        t0 = time.perf_counter()
        s = run_study(study, Path(d) / "lc2", workers=2, progress=False)
        res["localcluster_2workers"] = {
            "total_wall_s": time.perf_counter() - t0, "setup_s": s.setup_s, "loop_s": s.loop_s,
            "compute_s": s.compute_s, "store_s": s.store_s,
            "parallel_efficiency": s.compute_s / (2 * s.loop_s),
        }
        t0 = time.perf_counter()
        s = run_study(study, Path(d) / "seq", progress=False)  # everything stored: pure skip
        res["rerun_all_skipped_s"] = time.perf_counter() - t0
    return res


if __name__ == "__main__":
    out = main()
    json.dump(out, sys.stdout, indent=2)
    print()
