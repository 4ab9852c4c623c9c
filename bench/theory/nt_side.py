"""neural-tangents side of the theory benchmark (run with NT's own interpreter).

    bench/.venvs/nt/bin/python bench/theory/nt_side.py --x X.npy --act relu --depth 10 \
        --W-std 1.4142 --b-std 0.1 --repeats 3 --out PREFIX

Loads the inputs from X.npy (float64, N × n_0), builds stax.serial(Dense, act, …, Dense) with
`depth` Dense layers (NT 'ntk' parameterisation), jits kernel_fn(x, None, ('nngp', 'ntk')) in
float64 and writes PREFIX.nngp.npy, PREFIX.ntk.npy and PREFIX.json (timings, versions).
The first call (trace + XLA compile + run) is reported separately from the warm calls.
`--act tanh` uses stax.ElementwiseNumerical(jnp.tanh, deg, df=1 - tanh²).
Threads are set by the caller (bench_nt.py) through the environment (XLA_FLAGS, affinity).
"""
import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import neural_tangents as nt  # noqa: E402
from neural_tangents import stax  # noqa: E402


def activation(name: str, deg: int):
    if name == "relu":
        return stax.Relu()
    if name == "erf":
        return stax.Erf()
    if name == "tanh":
        return stax.ElementwiseNumerical(jnp.tanh, deg=deg, df=lambda z: 1.0 - jnp.tanh(z) ** 2)
    raise SystemExit(f"unknown activation {name!r}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--x", required=True)
    ap.add_argument("--act", required=True)
    ap.add_argument("--depth", type=int, required=True)
    ap.add_argument("--W-std", type=float, required=True)
    ap.add_argument("--b-std", type=float, required=True)
    ap.add_argument("--deg", type=int, default=25)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", required=True)
    ap.add_argument("--batch-size", type=int, default=0,
                    help="0: one jitted kernel_fn call on the whole N×N; >0: nt.batch(kernel_fn, batch_size) "
                         "(NT's own blockwise evaluation, jitted internally) to bound memory")
    ap.add_argument("--no-save", action="store_true", help="time only, do not write the kernels")
    a = ap.parse_args()

    import warnings
    warnings.filterwarnings("ignore", message=".*Numerical Activation Layer.*")

    layers = []
    for _ in range(a.depth - 1):
        layers += [stax.Dense(512, W_std=a.W_std, b_std=a.b_std, parameterization="ntk"), activation(a.act, a.deg)]
    layers += [stax.Dense(1, W_std=a.W_std, b_std=a.b_std, parameterization="ntk")]
    _, _, kernel_fn = stax.serial(*layers)
    if a.batch_size:
        kfn = nt.batch(kernel_fn, batch_size=a.batch_size, device_count=0, store_on_device=False)
    else:
        kfn = jax.jit(kernel_fn, static_argnames="get")

    x = jnp.asarray(np.load(a.x))
    assert x.dtype == jnp.float64, x.dtype

    # warm-up: with nt.batch one block of the same shape compiles the blocked function; else the full call
    t = time.perf_counter()
    k = jax.block_until_ready(kfn(x[:a.batch_size] if a.batch_size else x, None, get=("nngp", "ntk")))
    first = time.perf_counter() - t
    if a.repeats == 0:  # reference runs: just the values
        k = jax.block_until_ready(kfn(x, None, get=("nngp", "ntk")))
    compile_only = None
    if a.repeats:  # trace + compile alone: lower + compile a fresh wrapper (a new function object, so no cache hit)
        t = time.perf_counter()
        xc = x[:a.batch_size] if a.batch_size else x
        jax.jit(lambda y1, y2: kernel_fn(y1, y2, get=("nngp", "ntk"))).lower(xc, xc if a.batch_size else None).compile()
        compile_only = time.perf_counter() - t

    times = []
    for _ in range(a.repeats):
        t = time.perf_counter()
        k = jax.block_until_ready(kfn(x, None, get=("nngp", "ntk")))
        times.append(time.perf_counter() - t)
    nngp, ntk = np.asarray(k.nngp), np.asarray(k.ntk)
    if not a.no_save:
        np.save(a.out + ".nngp.npy", nngp)
        np.save(a.out + ".ntk.npy", ntk)
    info = {
        "tool": f"neural-tangents {nt.__version__}", "jax": jax.__version__, "jaxlib": jax.lib.__version__,
        "numpy": np.__version__, "act": a.act, "deg": a.deg if a.act == "tanh" else None,
        "N": int(x.shape[0]), "depth": a.depth, "batch_size": a.batch_size, "dtype": str(nngp.dtype),
        "first_call_s": first, "first_call_is": "one block (compile + 1 block)" if a.batch_size else "full call (trace + compile + run)", "compile_only_s": compile_only, "times_s": times,
        "median_s": float(np.median(times)) if times else None, "min_s": float(np.min(times)) if times else None,
        "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""), "affinity": sorted(os.sched_getaffinity(0)),
        "devices": [str(d) for d in jax.devices()],
    }
    with open(a.out + ".json", "w") as f:
        json.dump(info, f, indent=1)
    print(json.dumps({k_: info[k_] for k_ in ("N", "act", "first_call_s", "median_s")}))


if __name__ == "__main__":
    main()
