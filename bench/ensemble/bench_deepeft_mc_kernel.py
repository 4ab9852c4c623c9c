"""deepeft: per-sample cost of the mean kernel (all layers), same network as bench_nt_mc_kernel.py.

    python bench/ensemble/bench_deepeft_mc_kernel.py --ensemble 256
Prints one JSON line per configuration (conditional-Gaussian fast path and explicit-weights path).
"""
import argparse
import json
import time

import numpy as np
import torch

from deepeft.core.spec import MLPSpec
from deepeft.ensemble import measure


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--depth", type=int, default=5)
    ap.add_argument("--n-inputs", type=int, default=100)
    ap.add_argument("--input-dim", type=int, default=8)
    ap.add_argument("--ensemble", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    spec = MLPSpec.make("erf", a.depth, a.width, a.input_dim, C_W=1.0, C_b=0.0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((a.n_inputs, a.input_dim))
    x *= np.sqrt(a.input_dim) / np.linalg.norm(x, axis=1, keepdims=True)
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
