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

All three start from the same weights (deepeft's initialisation copied into the modules) and their
outputs after the first round are compared (max |Δz|).  On a shared machine the three run in
alternating rounds of ``--steps`` steps (same conditions for each); the median per-step time over
``--rounds`` is reported (the cost per step is constant, so it scales to the issue's 1000 steps).

    PYTHONPATH=. python bench/training/bench_training.py --steps 1000          # the issue's configuration
    PYTHONPATH=. python bench/training/bench_training.py --steps 10 --rounds 3 --threads 1
    PYTHONPATH=. python bench/training/bench_training.py --ensemble 64 --steps 5 --loop-networks 4   # smoke test
    PYTHONPATH=. python bench/training/bench_training.py --device cuda --ensemble 16384 --width 512 --skip loop
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


def loop_stepper(mods, x, y, lr):
    opts = [torch.optim.SGD(m.parameters(), lr=lr) for m in mods]

    def step(k):
        for m, opt in zip(mods, opts):
            for _ in range(k):
                opt.zero_grad(set_to_none=True)
                loss = 0.5 * (m(x) - y).pow(2).sum()
                loss.backward()
                opt.step()
    return step


def vmap_stepper(mods, x, y, lr):
    params, buffers = stack_module_state(mods)
    base = copy.deepcopy(mods[0]).to("meta")

    def loss_fn(p, b):
        return 0.5 * (functional_call(base, (p, b), (x,)) - y).pow(2).sum()

    g_fn = vmap(grad(loss_fn), in_dims=(0, 0))

    def step(k):
        with torch.no_grad():
            for _ in range(k):
                g = g_fn(params, buffers)
                for name in params:
                    params[name].sub_(g[name], alpha=lr)

    def outputs():
        with torch.no_grad():
            return vmap(lambda p, b: functional_call(base, (p, b), (x,)))(params, buffers)
    return step, outputs


def timed(fn, dev):
    sync(dev)
    t0 = time.perf_counter()
    out = fn()
    sync(dev)
    return time.perf_counter() - t0, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ensemble", type=int, default=1024)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--n-train", type=int, default=32)
    ap.add_argument("--input-dim", type=int, default=16)
    ap.add_argument("--steps", type=int, default=1000, help="GD steps per round")
    ap.add_argument("--rounds", type=int, default=1, help="alternating timing rounds (median reported)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--loop-networks", type=int, default=16, help="networks timed in the nn.Module loop")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--skip", default="", help="comma-separated: loop,vmap")
    ap.add_argument("--json", default=None, help="write the results here")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
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

    # The machine is shared: the three methods run in alternating rounds of ``--steps`` steps each
    # (same conditions for all), and the median per-step time over ``--rounds`` is reported.
    net = BatchedMLP(spec, device=dev, dtype=dt)
    params = net.init(M, seed=0, start=0)
    k = min(M, a.loop_networks)
    v_step, v_out = (None, None) if "vmap" in skip else vmap_stepper(modules_from(params, spec, dev, dt, range(M)), x, y, lr)
    l_mods = None if "loop" in skip else modules_from(params, spec, dev, dt, range(k))
    l_step = None if l_mods is None else loop_stepper(l_mods, x, y, lr)
    train_ensemble(spec, d.x_train, d.y_train, ensemble=2, lr=lr, steps=2, dtype=dt, device=dev, record=[0, 2])
    t = {"deepeft": [], "vmap": [], "loop": []}
    for r in range(a.rounds):
        dt_o, tr = timed(lambda: train_ensemble(spec, d.x_train, d.y_train, ensemble=M, lr=lr, steps=a.steps,
                                                dtype=dt, device=dev, record=[0, a.steps]), dev)
        t["deepeft"].append(dt_o / a.steps)
        if r == 0:
            z_ours = tr.train_out[:, -1]
            res["deepeft_chunk"] = tr.meta["chunk_size"]
        if v_step is not None:
            t["vmap"].append(timed(lambda: v_step(a.steps), dev)[0] / a.steps)
            if r == 0:
                res["vmap_max_abs_diff"] = float(np.abs(v_out().double().cpu().numpy() - z_ours).max())
        if l_step is not None:
            t["loop"].append(timed(lambda: l_step(a.steps), dev)[0] / a.steps * M / k)
            if r == 0:
                with torch.no_grad():
                    out_l = torch.stack([m(x) for m in l_mods]).double().cpu().numpy()
                res["loop_max_abs_diff"] = float(np.abs(out_l - z_ours[:k]).max())
        print(f"round {r}: per step " + ", ".join(f"{n} {v[-1]:.3f} s" for n, v in t.items() if v), flush=True)
    med = {n: float(np.median(v)) for n, v in t.items() if v}
    res["per_step_s"] = med
    res["per_step_all_rounds_s"] = t
    res["loop_networks_timed"] = k
    for n in ("vmap", "loop"):
        if n in med:
            res[f"speedup_vs_{n}"] = med[n] / med["deepeft"]
    print(f"median per step ({a.rounds} rounds of {a.steps} steps, {M} networks): " +
          ", ".join(f"{n} {v:.3f} s" for n, v in med.items()) +
          "".join(f"; deepeft {res[f'speedup_vs_{n}']:.2f}× faster than {n}" for n in ("vmap", "loop") if n in med))
    print(f"same numbers after {a.steps} steps: max |Δz| vs vmap {res.get('vmap_max_abs_diff')}, "
          f"vs loop {res.get('loop_max_abs_diff')}")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(res, fh, indent=1)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
