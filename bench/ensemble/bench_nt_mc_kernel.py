"""neural-tangents monte_carlo_kernel_fn: per-sample cost of the mean NNGP kernel.

Run in its own venv (see /work/shared/reference/peers.md §9):
    bench/.venvs/nt/bin/python bench/ensemble/bench_nt_mc_kernel.py --n-samples 16
Prints one JSON line.
"""
import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402
import neural_tangents as nt  # noqa: E402
from mc_kernel_common import add_network_args, unit_inputs  # noqa: E402
from neural_tangents import stax  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    add_network_args(ap)
    ap.add_argument("--n-samples", type=int, default=16)
    ap.add_argument("--implementation", type=int, default=1)
    ap.add_argument("--x64", action="store_true")
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    if a.x64:
        jax.config.update("jax_enable_x64", True)
    layers = []
    for _ in range(a.depth - 1):
        layers += [stax.Dense(a.width, W_std=1.0, b_std=None), stax.Erf()]
    layers += [stax.Dense(1, W_std=1.0, b_std=None)]
    init_fn, apply_fn, _ = stax.serial(*layers)
    x = unit_inputs(a.n_inputs, a.input_dim)
    x = jax.numpy.asarray(x)
    key = jax.random.PRNGKey(0)
    # warm-up (compilation) with the same shapes, then the timed run
    kfn = nt.monte_carlo_kernel_fn(init_fn, apply_fn, key, a.n_samples, implementation=a.implementation)
    t = time.perf_counter()
    jax.block_until_ready(kfn(x, None, "nngp"))  # first call: includes jit compilation
    first = time.perf_counter() - t
    dt = float("inf")
    for _ in range(a.repeats):  # warm calls: the per-sample cost
        t = time.perf_counter()
        k = jax.block_until_ready(kfn(x, None, "nngp"))
        dt = min(dt, time.perf_counter() - t)
    print(json.dumps({"tool": f"neural-tangents {nt.__version__} (jax {jax.__version__})", "width": a.width,
                      "depth": a.depth, "n_inputs": a.n_inputs, "n_samples": a.n_samples,
                      "dtype": str(k.dtype), "seconds": dt, "first_call_seconds": first, "seconds_per_sample": dt / a.n_samples,
                      "k00": float(k[0, 0])}))


if __name__ == "__main__":
    main()
