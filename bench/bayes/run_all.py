"""Side-by-side LLC benchmark: deepeft vs devinterp 1.3.2 vs canonical-interp 0.1.5.

    python bench/bayes/run_all.py [--rounds 2]

Builds the problems (problems.py), saves them to bench/.venvs/bayes_problems.pt (ignored by git),
then runs each tool in its own interpreter — deepeft in the current one, the peers in
bench/.venvs/devinterp1 and bench/.venvs/canonical (install commands: shared/reference/peers.md §9)
— alternating tools round by round, and writes bench/bayes/results.json.  Wall time is the whole
estimate call (init loss + sampling; canonical's includes its torch.compile).  The best of the
rounds is reported (the machine is shared; the minimum is the least-disturbed run).
"""
import argparse
import json
import math
import os
import subprocess
import sys
from fractions import Fraction

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from problems import DLN_RANK, DLN_WIDTHS, build_dln, build_mlp  # noqa: E402

SETTINGS = {
    "dln": dict(chains=4, draws=2000, burnin=1000, batch=100, lr=5e-5, gamma=100.0),
    "mlp": dict(chains=4, draws=2000, burnin=1000, batch=100, lr=4e-5, gamma=100.0),
}
PYTHONS = {
    "deepeft": sys.executable,
    "deepeft_rr": sys.executable,
    "deepeft_builtin": sys.executable,
    "deepeft_gibbs": sys.executable,
    "devinterp": os.path.join(ROOT, "bench/.venvs/devinterp1/bin/python"),
    # canonical-interp 0.1.5 imports itertools.batched (Python >= 3.12): prefer a 3.12 venv if present
    "canonical": next((p for p in (os.path.join(ROOT, "bench/.venvs/canonical312/bin/python"),
                                   os.path.join(ROOT, "bench/.venvs/canonical/bin/python")) if os.path.exists(p)),
                      os.path.join(ROOT, "bench/.venvs/canonical/bin/python")),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--kinds", nargs="+", default=["dln", "mlp"])
    ap.add_argument("--tools", nargs="+", default=["deepeft", "devinterp", "canonical"])
    ap.add_argument("--threads", type=int, default=1, help="torch threads per tool (1 = the fair setting on a shared machine)")
    args = ap.parse_args()
    path = os.path.join(ROOT, "bench/.venvs/bayes_problems.pt")
    blob = {}
    for kind, build in (("dln", build_dln), ("mlp", build_mlp)):
        m, x, y = build()
        blob[kind] = {"state": m.state_dict(), "x": x, "y": y, "settings": SETTINGS[kind]}
    torch.save(blob, path)
    from deepeft.bayes import aoyagi_dln

    lam = float(aoyagi_dln(DLN_WIDTHS, DLN_RANK)[0])
    runs = []
    for rnd in range(args.rounds):
        for kind in args.kinds:
            for tool in args.tools:
                py = PYTHONS[tool]
                if not os.path.exists(py):
                    runs.append({"tool": tool, "kind": kind, "error": f"{py} missing (venv not installed)"})
                    continue
                env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), BENCH_THREADS=str(args.threads), PYTHONPATH=HERE)
                p = subprocess.run([py, os.path.join(HERE, "run_tool.py"), tool, kind, path], capture_output=True,
                                   text=True, env=env, timeout=3600)
                line = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
                if p.returncode != 0 or not line:
                    runs.append({"tool": tool, "kind": kind, "round": rnd, "error": p.stderr[-2000:]})
                else:
                    r = json.loads(line[-1])
                    r["round"] = rnd
                    runs.append(r)
                print(json.dumps(runs[-1])[:300], flush=True)
    out = {"settings": SETTINGS, "aoyagi_lambda_dln": lam, "dln_widths": DLN_WIDTHS, "dln_rank": DLN_RANK,
           "runs": runs, "cpu": os.cpu_count(), "threads": args.threads, "torch": torch.__version__}
    name = "results.json" if args.threads == 1 else f"results_threads{args.threads}.json"
    with open(os.path.join(HERE, name), "w") as fh:
        json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main()
