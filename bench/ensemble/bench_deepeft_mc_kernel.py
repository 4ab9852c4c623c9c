"""deepeft: per-sample cost of the mean kernel (all layers), same network as bench_nt_mc_kernel.py.

    python bench/ensemble/bench_deepeft_mc_kernel.py --ensemble 256
Prints one JSON line per configuration (conditional-Gaussian fast path and explicit-weights path).
"""
import argparse
import json
import time

import torch
from mc_kernel_common import add_network_args, unit_inputs

from deepeft.core.spec import MLPSpec
from deepeft.ensemble import measure


def main():
    ap = argparse.ArgumentParser()
    add_network_args(ap)
    ap.add_argument("--ensemble", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    spec = MLPSpec.make("erf", a.depth, a.width, a.input_dim, C_W=1.0, C_b=0.0)
    x = unit_inputs(a.n_inputs, a.input_dim)
    for method in ("gaussian", "weights"):
        for dtype in ("float32", "float64"):
            # warm-up with the timed shapes (neural-tangents' warm call also reuses its compiled shapes)
            measure(spec, x, ensemble=a.ensemble, quantities=("kernel",), method=method, dtype=dtype)
            best = float("inf")
            for r in range(a.repeats):
                t = time.perf_counter()
                obs = measure(spec, x, ensemble=a.ensemble, seed=r, quantities=("kernel",), method=method, dtype=dtype)
                best = min(best, time.perf_counter() - t)
            print(json.dumps({"tool": "deepeft", "method": method, "dtype": dtype, "width": a.width, "depth": a.depth,
                              "n_inputs": a.n_inputs, "ensemble": a.ensemble, "threads": torch.get_num_threads(),
                              "seconds": best, "seconds_per_sample": best / a.ensemble,
                              "k00_last": float(obs["kernel"][-1, 0, 0]),
                              "se_k00_last": float(obs.errors["kernel"][-1, 0, 0])}), flush=True)


if __name__ == "__main__":
    main()
