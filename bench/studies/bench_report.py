"""Report generation time for a 500-point study (synthetic point function: the report's cost does
not depend on where the numbers came from).  Usage: python bench/studies/bench_report.py"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

STUDY = Path(__file__).resolve().parents[2] / "examples" / "report500.toml"


def main(repeats: int = 3) -> dict:
    from deepeft.report.study_report import write_report
    from deepeft.studies import run_study
    from deepeft.studies.points import synthetic_point

    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        s = run_study(STUDY, Path(d) / "out", point_fn=synthetic_point, progress=False)
        run_s = time.perf_counter() - t0
        times, cpu = [], []
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            html = write_report(Path(d) / "out")
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        return {"points": s.computed, "synthetic_run_s": run_s, "store_per_point_ms": 1e3 * s.store_s / s.computed,
                "report_s": times, "report_median_s": sorted(times)[len(times) // 2],
                "report_cpu_s": cpu,  # CPU time of this process: robust when the machine is shared
                "html_bytes": html.stat().st_size}


if __name__ == "__main__":
    json.dump(main(), sys.stdout, indent=2)
    print()
