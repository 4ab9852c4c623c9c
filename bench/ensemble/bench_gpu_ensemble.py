"""GPU benchmark: kernel + four-point statistics of M networks, naive weights+bmm vs deepeft.

Configuration of the issue: M = 4096 networks, width 512, depth 16, 64 inputs, tanh, float32.

* naive: per layer materialise W ~ N(0, C_W/n) with torch.randn (M × n × n), z = bmm(σ, Wᵀ) + b,
  then the cross-neuron statistics of z (kernel, V_(αα)(ββ)) summed over networks.
* deepeft: ``deepeft.ensemble.measure(..., method='gaussian')`` — exact conditional-Gaussian
  sampling z = chol(C_b + C_W σσᵀ/n) ε (no n×n weights), same statistics plus jackknife errors.

Both are timed after a warm-up with torch.cuda.synchronize(); the two measured kernels and vertices
are compared entry by entry (z-scores with the combined standard errors): "identical statistics"
means the same distribution, the samples themselves differ.

    python bench/ensemble/bench_gpu_ensemble.py                   # on a CUDA machine
    python bench/ensemble/bench_gpu_ensemble.py --device cpu --ensemble 64 --width 64 --depth 4 --n-inputs 8  # smoke test
"""
import argparse
import json
import math
import platform
import time

import numpy as np
import torch

from deepeft.core.spec import MLPSpec
from deepeft.ensemble import measure
from deepeft.ensemble.sampler import resolve_device


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def naive(spec, x, M, dev, dtype, seed=0):
    """Materialise every weight with torch.randn, then bmm, layer by layer; cross-neuron stats."""
    g = torch.Generator(device=dev)
    g.manual_seed(seed)
    act = spec.activation.fn
    h = x.expand(M, *x.shape)
    N = x.shape[0]
    sums = []
    for l in range(1, spec.depth + 1):
        n_in, n = spec.fan_in(l), spec.width(l)
        W = torch.randn(M, n, n_in, generator=g, device=dev, dtype=dtype) * math.sqrt(spec.C_W[l - 1] / n_in)
        b = torch.randn(M, 1, n, generator=g, device=dev, dtype=dtype) * math.sqrt(spec.C_b[l - 1])
        z = torch.baddbmm(b, h, W.transpose(1, 2))
        S2 = torch.bmm(z, z.transpose(1, 2))  # Σ_i z_iα z_iβ
        d = torch.diagonal(S2, dim1=1, dim2=2)
        z2 = z * z
        Q = torch.bmm(z2, z2.transpose(1, 2))  # Σ_i z_iα² z_iβ²
        k = S2 / n
        dd = (d / n).unsqueeze(2) * (d / n).unsqueeze(1)
        Td = (d.unsqueeze(2) * d.unsqueeze(1) - Q) / (n * (n - 1)) if n > 1 else torch.full_like(Q, float("nan"))
        sums.append(torch.stack([k.sum(0), dd.sum(0), Td.sum(0), (k * k).sum(0)]).double())
        h = act(z)
    return torch.stack(sums), N


def naive_estimates(sums, M, spec):
    out_k, out_v, se_k, se_v = [], [], [], []
    for l in range(spec.depth):
        Sk, Sdd, STd, Skk = (s.cpu().numpy() for s in sums[l])
        k = Sk / M
        dsum = np.diagonal(Sk)
        conn = STd / M - (np.multiply.outer(dsum, dsum) - Sdd) / (M * (M - 1))
        out_k.append(k)
        out_v.append(spec.fan_in(l + 1) * conn)
        se_k.append(np.sqrt(np.maximum(Skk / M - k**2, 0) / M))  # plain SE over networks
    return np.array(out_k), np.array(out_v), np.array(se_k)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--ensemble", type=int, default=4096)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--depth", type=int, default=16)
    ap.add_argument("--n-inputs", type=int, default=64)
    ap.add_argument("--activation", default="tanh")
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--tf32", action="store_true", help="allow TF32 matmuls (both methods)")
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    dev = resolve_device(a.device)  # clear error if CUDA is absent
    dtype = torch.float32 if a.dtype == "float32" else torch.float64
    torch.backends.cuda.matmul.allow_tf32 = a.tf32
    torch.backends.cudnn.allow_tf32 = a.tf32
    spec = MLPSpec.make(a.activation, a.depth, a.width, a.width, C_W=1.0, C_b=0.0, output_width=a.width)
    rng = np.random.default_rng(0)
    xn = rng.standard_normal((a.n_inputs, a.width))
    xn *= np.sqrt(a.width) / np.linalg.norm(xn, axis=1, keepdims=True)
    x = torch.as_tensor(xn, dtype=dtype, device=dev)
    M = a.ensemble
    kw = dict(ensemble=M, device=a.device, dtype=a.dtype, quantities=("kernel", "V_pairs", "V_norm"),
              method="gaussian", chunk_size=M)

    # warm-up
    naive(spec, x, min(M, 256), dev, dtype)
    measure(spec, xn, **dict(kw, ensemble=min(M, 256), chunk_size=None))
    sync(dev)
    t_naive, t_ours = [], []
    for r in range(a.repeats):
        sync(dev)
        t = time.perf_counter()
        sums, _ = naive(spec, x, M, dev, dtype, seed=r)
        sync(dev)
        t_naive.append(time.perf_counter() - t)
        t = time.perf_counter()
        obs = measure(spec, xn, seed=r, **kw)
        sync(dev)
        t_ours.append(time.perf_counter() - t)
    k_nv, v_nv, se_k_nv = naive_estimates(sums, M, spec)
    L = spec.depth
    flops_naive = sum(2.0 * M * a.n_inputs * spec.width(l) * spec.fan_in(l) for l in range(1, L + 1))
    # statistics agree (same distribution): z-scores of the difference, last layers
    zk = (obs["kernel"] - k_nv) / np.sqrt(obs.errors["kernel"] ** 2 + se_k_nv**2 + 1e-30)
    res = {
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__, "config": vars(a),
        "naive_ms": 1e3 * min(t_naive), "deepeft_ms": 1e3 * min(t_ours),
        "speedup": min(t_naive) / min(t_ours),
        "naive_useful_tflops": flops_naive / min(t_naive) / 1e12,
        "kernel_last_layer": {"naive": float(k_nv[-1, 0, 0]), "deepeft": float(obs["kernel"][-1, 0, 0]),
                              "deepeft_se": float(obs.errors["kernel"][-1, 0, 0])},
        "V_norm_last_layer": {"naive": float(v_nv[-1, 0, 0] / (spec.fan_in(L) * k_nv[-1, 0, 0] ** 2)),
                              "deepeft": float(obs["V_norm"][-1, 0]), "deepeft_se": float(obs.errors["V_norm"][-1, 0])},
        "kernel_max_abs_z_all_layers_entries": float(np.nanmax(np.abs(zk[1:]))),
        "kernel_frac_abs_z_gt_3": float(np.mean(np.abs(zk[1:]) > 3)),
        "all_naive_ms": [1e3 * t for t in t_naive], "all_deepeft_ms": [1e3 * t for t in t_ours],
    }
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
