"""Benchmark: full-batch GD of an ensemble, deepeft vs two PyTorch baselines, same networks, same numbers.

Configuration of issue 13: M = 1024 networks, width 128, depth 4, 32 training inputs, 1000 GD
steps, float32, CPU.  The networks are ReLU MLPs at criticality in the 'standard' parameterisation
with the default λ (λ_W = n_{l-1}, λ_b = 1), i.e. per-parameter learning rate 1: plain SGD with one
lr, which is what both baselines run.  Loss: ½ Σ (z − y)² per network (summed, deepeft conventions).

* deepeft:  ``deepeft.ensemble.training.train_ensemble`` (BatchedMLP, manual batched backward).
* loop:     a Python loop over M ``nn.Sequential`` models, each with its own ``torch.optim.SGD``
            (too slow to run for all M on this machine: ``--loop-networks`` of them are timed and
            the time is scaled by M / loop-networks, which is exact for a loop).
* vmap:     PyTorch's model-ensembling recipe: ``torch.func.stack_module_state`` + ``vmap`` of
            ``grad(functional_call)`` over the stacked parameters, update in place.

All three start from the same weights (deepeft's initialisation copied into the modules) and the
final outputs are compared (max |Δz|).

    python bench/training/bench_training.py                       # the issue's configuration
    python bench/training/bench_training.py --ensemble 64 --steps 50 --loop-networks 8   # smoke test
    python bench/training/bench_training.py --device cuda --ensemble 16384 --width 512     # GPU
"""
import argparse
import copy
import json
import math
import platform
import time

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad, stack_module_state, vmap

from deepeft.datasets import load_dataset
from deepeft.ensemble.sampler import resolve_device
from deepeft.ensemble.training import train_ensemble
from deepeft.nets import BatchedMLP
from deepeft.theory import critical_spec


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def modules_from(params, spec, dev, dtype, idx):
    """nn.Sequential copies of networks ``idx`` of a BatchedMLP parameter stack ('standard' param.)."""
    mods = []
    for m in idx:
        layers = []
        for l, p in enumerate(params, start=1):
            lin = nn.Linear(spec.fan_in(l), spec.width(l)).to(dev, dtype)
            with torch.no_grad():
                lin.weight.copy_(p["W"][m])
                lin.bias.copy_(p["b"][m])
            layers.append(lin)
            if l < spec.depth:
                layers.append(nn.ReLU())
        mods.append(nn.Sequential(*layers))
    return mods


def run_loop(mods, x, y, lr, steps, dev):
    opts = [torch.optim.SGD(m.parameters(), lr=lr) for m in mods]
    sync(dev)
    t0 = time.perf_counter()
    for m, opt in zip(mods, opts):
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            loss = 0.5 * (m(x) - y).pow(2).sum()
            loss.backward()
            opt.step()
    sync(dev)
    return time.perf_counter() - t0


def run_vmap(mods, x, y, lr, steps, dev):
    params, buffers = stack_module_state(mods)
    base = copy.deepcopy(mods[0]).to("meta")

    def loss_fn(p, b):
        return 0.5 * (functional_call(base, (p, b), (x,)) - y).pow(2).sum()

    g_fn = vmap(grad(loss_fn), in_dims=(0, 0))
    sync(dev)
    t0 = time.perf_counter()
    with torch.no_grad():
        for _ in range(steps):
            g = g_fn(params, buffers)
            for k in params:
                params[k].sub_(g[k], alpha=lr)
    sync(dev)
    dt = time.perf_counter() - t0
    with torch.no_grad():
        out = vmap(lambda p, b: functional_call(base, (p, b), (x,)))(params, buffers)
    return dt, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ensemble", type=int, default=1024)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--n-train", type=int, default=32)
    ap.add_argument("--input-dim", type=int, default=16)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--loop-networks", type=int, default=16, help="networks timed in the nn.Module loop")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--skip", default="", help="comma-separated: loop,vmap")
    ap.add_argument("--json", default=None, help="write the results here")
    a = ap.parse_args()
    dev = resolve_device(a.device)
    dt = torch.float32 if a.dtype == "float32" else torch.float64
    skip = set(filter(None, a.skip.split(",")))
    spec = critical_spec("relu", a.depth, a.width, a.input_dim, parameterization="standard")
    d = load_dataset("teacher", a.n_train, 0, input_dim=a.input_dim, seed=0)
    from deepeft.theory.training import lr_bound_for
    lr = 0.5 * lr_bound_for(spec, d.x_train)
    x = torch.as_tensor(d.x_train, dtype=dt, device=dev)
    y = torch.as_tensor(d.y_train, dtype=dt, device=dev)
    M = a.ensemble
    res = {"config": vars(a), "lr": lr, "torch": torch.__version__, "threads": torch.get_num_threads(),
           "machine": platform.processor() or platform.machine()}

    # deepeft (warm-up on a tiny run first)
    train_ensemble(spec, d.x_train, d.y_train, ensemble=2, lr=lr, steps=3, dtype=dt, device=dev, record=[0, 3])
    sync(dev)
    t0 = time.perf_counter()
    tr = train_ensemble(spec, d.x_train, d.y_train, ensemble=M, lr=lr, steps=a.steps, dtype=dt, device=dev,
                        record=[0, a.steps])
    sync(dev)
    res["deepeft_s"] = time.perf_counter() - t0
    res["deepeft_chunk"] = tr.meta["chunk_size"]
    z_ours = tr.train_out[:, -1]
    print(f"deepeft: {res['deepeft_s']:.2f} s for {M} networks × {a.steps} steps "
          f"({M * a.steps / res['deepeft_s']:.0f} network-steps/s)", flush=True)

    net = BatchedMLP(spec, device=dev, dtype=dt)
    params = net.init(M, seed=0, start=0)
    if "vmap" not in skip:
        mods = modules_from(params, spec, dev, dt, range(M))
        t_v, out_v = run_vmap(mods, x, y, lr, a.steps, dev)
        res["vmap_s"] = t_v
        res["vmap_max_abs_diff"] = float(np.abs(out_v.double().cpu().numpy() - z_ours).max())
        print(f"torch.func vmap: {t_v:.2f} s  (deepeft {t_v / res['deepeft_s']:.1f}× faster), "
              f"max |Δz| = {res['vmap_max_abs_diff']:.2e}", flush=True)
        del mods
    if "loop" not in skip:
        k = min(M, a.loop_networks)
        mods = modules_from(params, spec, dev, dt, range(k))
        t_l = run_loop(mods, x, y, lr, a.steps, dev)
        res["loop_s_measured"] = t_l
        res["loop_networks"] = k
        res["loop_s"] = t_l * M / k
        with torch.no_grad():
            out_l = torch.stack([m(x) for m in mods]).double().cpu().numpy()
        res["loop_max_abs_diff"] = float(np.abs(out_l - z_ours[:k]).max())
        print(f"nn.Module loop + SGD: {t_l:.2f} s for {k} networks → {res['loop_s']:.1f} s for {M} "
              f"(deepeft {res['loop_s'] / res['deepeft_s']:.1f}× faster), max |Δz| = {res['loop_max_abs_diff']:.2e}",
              flush=True)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(res, fh, indent=1)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
