"""Side-by-side CPU benchmark: deepeft vs neural-tangents monte_carlo_kernel_fn (mean NNGP kernel).

Alternates the two tools ``--rounds`` times (the machine may be shared; interleaving exposes both
to the same load) and reports the best warm per-sample time of each and their ratio.

    python bench/ensemble/run_cpu_comparison.py --rounds 3 [--threads 1]
"""
import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
NT_PY = HERE.parent / ".venvs" / "nt" / "bin" / "python"


def run(cmd, env):
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="0 = library defaults")
    ap.add_argument("--n-samples", type=int, default=128)
    ap.add_argument("--n-inputs", type=int, default=100)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--depth", type=int, default=5)
    a = ap.parse_args()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    if a.threads:
        env.update(OMP_NUM_THREADS=str(a.threads), MKL_NUM_THREADS=str(a.threads),
                   XLA_FLAGS=f"--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads={a.threads}")
    common = ["--n-inputs", str(a.n_inputs), "--width", str(a.width), "--depth", str(a.depth)]
    best = {}
    for _ in range(a.rounds):
        for r in run([str(NT_PY), str(HERE / "bench_nt_mc_kernel.py"), "--n-samples", str(a.n_samples), *common], env):
            key = ("neural-tangents", r["dtype"])
            best[key] = min(best.get(key, 1e9), r["seconds_per_sample"])
        for r in run([sys.executable, str(HERE / "bench_deepeft_mc_kernel.py"), "--ensemble", str(a.n_samples),
                      "--repeats", "2", *common], env):
            key = (f"deepeft/{r['method']}", r["dtype"])
            best[key] = min(best.get(key, 1e9), r["seconds_per_sample"])
    nt = best[("neural-tangents", "float32")]
    rows = [{"tool": k[0], "dtype": k[1], "ms_per_sample": 1e3 * v, "speedup_vs_nt_float32": nt / v}
            for k, v in sorted(best.items())]
    info = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "threads": a.threads or "default", "config": vars(a)}
    print(json.dumps({"info": info, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
