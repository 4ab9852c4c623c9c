"""deepeft vs neural-tangents: infinite-width NNGP + NTK of deep MLPs, time and values (issue 2, "Speed").

    python bench/theory/bench_nt.py                       # both cases, writes bench/theory/results.json
    python bench/theory/bench_nt.py --cases relu --n-relu 1000 --repeats 3

Cases (defaults = the issue's targets):
  relu  ReLU MLP, depth 10, N = 4000 inputs: NT's analytic stax kernel_fn (one jitted call), target
        deepeft ≥ 2× faster;
  tanh  tanh MLP, depth 10, N = 1000: NT's stax.ElementwiseNumerical(jnp.tanh, deg) (Gauss–Hermite,
        deg² nodes per pair), target deepeft ≥ 5× faster.  One jitted call on 1000×1000 asks XLA for
        45 GB (all 9 layers' deg²·N² buffers live at once), so NT runs through its own nt.batch
        (jitted blocks, --nt-batch-size).

Both sides: float64, the same inputs (saved to .npy and loaded by NT's interpreter,
bench/.venvs/nt/bin/python, see README.md), the same thread budget (--threads: CPU affinity of both
processes; torch.set_num_threads / OMP / MKL on deepeft's side, XLA_FLAGS
intra_op_parallelism_threads on NT's).  Timings: a first call (NT: trace + XLA compile + run; deepeft:
imports warm, first run) reported separately, then the median of --repeats warm calls.  The
load average is recorded around every timed block: other processes on the machine slow both sides.

Values: NT's NTK = deepeft's Θ with λ_W = C_W = W_std², λ_b = C_b = b_std² (MLPSpec's 'ntk'
default).  Reported: max |A−B| / √(B_aa B_bb) ("scaled", the natural kernel scale) and the
elementwise max |A−B|/|B| over entries with |B_ab| ≥ 1e-3 √(B_aa B_bb).  For tanh both are also
measured on a subset of --ref-n inputs against high-accuracy references: deepeft.theory.predict
(order='infinite', the panel-quadrature recursion, an independent code path) and NT's own
ElementwiseNumerical with larger deg (--ref-degs), so NT's quadrature error at deg is quantified.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def _set_threads(n: int) -> list[int]:
    cpus = sorted(os.sched_getaffinity(0))[:n]
    os.sched_setaffinity(0, cpus)
    for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[v] = str(n)
    os.environ["XLA_FLAGS"] = f"--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads={n}"
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return cpus


def machine_info() -> dict:
    info = {"python": platform.python_version(), "platform": platform.platform()}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            k, _, v = line.partition(":")
            if k.strip() in ("Model name", "CPU(s)", "Thread(s) per core", "Core(s) per socket", "L2 cache", "L3 cache",
                             "Hypervisor vendor"):
                info[k.strip()] = v.strip()
    except OSError:
        pass
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                info["MemTotal_GiB"] = round(int(line.split()[1]) / 2**20, 1)
    return info


def git_rev() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "deepeft"], cwd=REPO, capture_output=True,
                               text=True).stdout.strip()
        return rev + ("+dirty(deepeft/)" if dirty else "")
    except OSError:
        return "?"


def make_inputs(N: int, d: int, seed: int):
    import numpy as np
    rng = np.random.default_rng(seed)
    return rng.standard_normal((N, d))


def compare(A, B, floor: float = 1e-3) -> dict:
    """A against reference B: scaled = max|A−B|/√(B_aa B_bb); elem = max|A−B|/|B| where |B| ≥ floor·√(B_aa B_bb)."""
    import numpy as np
    d = np.sqrt(np.abs(np.outer(np.diag(B), np.diag(B))))
    err = np.abs(A - B)
    mask = np.abs(B) >= floor * d
    return {"scaled": float(np.max(err / d)),
            "elem": float(np.max(err[mask] / np.abs(B[mask]))),
            "elem_entries_excluded": int(mask.size - mask.sum()),
            "diag_elem": float(np.max(np.abs(np.diag(A) - np.diag(B)) / np.abs(np.diag(B))))}


def run_nt(args, x_path: Path, act: str, W_std: float, b_std: float, out: Path, *, deg=None, repeats=None,
           batch_size=0, save=True) -> dict:
    cmd = [args.nt_python, str(HERE / "nt_side.py"), "--x", str(x_path), "--act", act, "--depth", str(args.depth),
           "--W-std", repr(W_std), "--b-std", repr(b_std), "--deg", str(deg or args.deg),
           "--repeats", str(args.repeats if repeats is None else repeats), "--out", str(out),
           "--batch-size", str(batch_size)]
    if not save:
        cmd.append("--no-save")
    la0 = os.getloadavg()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        tail = "\n".join(l for l in p.stderr.splitlines() if not l.startswith(("I0000", "WARNING: All")))[-3000:]
        raise RuntimeError(f"NT side failed ({' '.join(cmd)}):\n{tail}")
    info = json.loads(Path(str(out) + ".json").read_text())
    info["loadavg_before"], info["loadavg_after"] = la0, os.getloadavg()
    return info


def deepeft_side(spec, x, repeats: int):
    """(nngp, ntk, timing dict) from deepeft's fast path (or predict(order='infinite') if absent)."""
    import numpy as np
    try:
        from deepeft.theory import infinite_kernels

        def fn():
            k = infinite_kernels(spec, x, get=("nngp", "ntk"))
            return k.nngp, k.ntk
        path = "deepeft.theory.infinite_kernels"
    except ImportError:  # before the fast path landed
        from deepeft.theory import predict

        def fn():
            obs = predict(spec, x, order="infinite")
            return obs["K"][-1], obs["Theta"][-1]
        path = "deepeft.theory.predict(order='infinite')"
    la0 = os.getloadavg()
    t = time.perf_counter()
    nngp, ntk = fn()
    first = time.perf_counter() - t
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        nngp, ntk = fn()
        times.append(time.perf_counter() - t)
    return nngp, ntk, {"path": path, "first_call_s": first, "times_s": times, "median_s": float(np.median(times)),
                       "min_s": float(np.min(times)), "loadavg_before": la0, "loadavg_after": os.getloadavg()}


def run_case(args, name: str, act: str, N: int, W_std: float, b_std: float, work: Path, rounds: int) -> dict:
    import numpy as np
    import torch
    from deepeft.core.spec import MLPSpec

    x = make_inputs(N, args.input_dim, args.seed)
    x_path = work / f"{name}_x.npy"
    np.save(x_path, x)
    spec = MLPSpec.make(act, depth=args.depth, width=512, input_dim=args.input_dim, W_std=W_std, b_std=b_std,
                        parameterization="ntk")
    res = {"case": name, "activation": act, "N": N, "depth": args.depth, "input_dim": args.input_dim,
           "W_std": W_std, "b_std": b_std, "inputs": f"standard normal, seed {args.seed}",
           "torch_threads": torch.get_num_threads()}
    bs = args.nt_batch_size if act == "tanh" else 0
    nt_rounds, de_rounds = [], []
    for r in range(rounds):  # alternate the two sides so that both see the same machine load
        print(f"[{name}] round {r + 1}/{rounds}: neural-tangents ...", flush=True)
        nt_rounds.append(run_nt(args, x_path, act, W_std, b_std, work / f"{name}_nt", batch_size=bs, save=(r == 0)))
        print(f"[{name}]   NT median {nt_rounds[-1]['median_s']:.3f} s; deepeft ...", flush=True)
        nngp, ntk, tim = deepeft_side(spec, x, args.repeats)
        de_rounds.append(tim)
        print(f"[{name}]   deepeft median {tim['median_s']:.3f} s", flush=True)
    nt_times = [t for rr in nt_rounds for t in rr["times_s"]]
    de_times = [t for rr in de_rounds for t in rr["times_s"]]
    res["nt"] = {"median_s": float(np.median(nt_times)), "rounds": nt_rounds}
    res["deepeft"] = {"median_s": float(np.median(de_times)), "rounds": de_rounds, "path": de_rounds[0]["path"]}
    res["speedup"] = res["nt"]["median_s"] / res["deepeft"]["median_s"]
    res["speedup_per_round"] = [a["median_s"] / b["median_s"] for a, b in zip(nt_rounds, de_rounds)]
    nt_nngp, nt_ntk = np.load(work / f"{name}_nt.nngp.npy"), np.load(work / f"{name}_nt.ntk.npy")
    res["deepeft_vs_nt"] = {"nngp": compare(nngp, nt_nngp), "ntk": compare(ntk, nt_ntk)}

    # independent references on a subset (each kernel entry depends only on its own pair of inputs)
    sub = np.sort(np.random.default_rng(args.seed + 1).choice(N, size=min(args.ref_n, N), replace=False))
    xs = x[sub]
    ix = np.ix_(sub, sub)
    from deepeft.theory import predict
    t = time.perf_counter()
    obs = predict(spec, xs, order="infinite")
    ref_K, ref_T = obs["K"][-1], obs["Theta"][-1]
    refs = {"ref_n": int(len(sub)), "predict_s": time.perf_counter() - t,
            "deepeft_fast_vs_predict": {"nngp": compare(nngp[ix], ref_K), "ntk": compare(ntk[ix], ref_T)},
            "nt_vs_predict": {"nngp": compare(nt_nngp[ix], ref_K), "ntk": compare(nt_ntk[ix], ref_T)}}
    if act == "tanh":
        xs_path = work / f"{name}_xsub.npy"
        np.save(xs_path, xs)
        for deg in args.ref_degs:
            print(f"[{name}] NT reference deg={deg} on {len(sub)} inputs ...", flush=True)
            info = run_nt(args, xs_path, act, W_std, b_std, work / f"{name}_nt_deg{deg}", deg=deg, repeats=0)
            K_d = np.load(work / f"{name}_nt_deg{deg}.nngp.npy")
            T_d = np.load(work / f"{name}_nt_deg{deg}.ntk.npy")
            refs[f"nt_deg{deg}_vs_predict"] = {"nngp": compare(K_d, ref_K), "ntk": compare(T_d, ref_T),
                                               "first_call_s": info["first_call_s"]}
            refs[f"deepeft_fast_vs_nt_deg{deg}"] = {"nngp": compare(nngp[ix], K_d), "ntk": compare(ntk[ix], T_d)}
            refs[f"nt_deg{args.deg}_vs_nt_deg{deg}"] = {"nngp": compare(nt_nngp[ix], K_d), "ntk": compare(nt_ntk[ix], T_d)}
    res["references"] = refs
    return res


def table(results: list[dict]) -> str:
    rows = ["| case | N | depth | NT time (s) | deepeft time (s) | speed-up | max rel diff NNGP (scaled / elem) "
            "| max rel diff NTK (scaled / elem) |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        c = r["deepeft_vs_nt"]
        lab = r["case"] + (f" (NT deg={r['nt_deg']})" if r.get("nt_deg") else "")
        rows.append(f"| {lab} | {r['N']} | {r['depth']} | {r['nt']['median_s']:.2f} | {r['deepeft']['median_s']:.2f} "
                    f"| {r['speedup']:.1f}× | {c['nngp']['scaled']:.1e} / {c['nngp']['elem']:.1e} "
                    f"| {c['ntk']['scaled']:.1e} / {c['ntk']['elem']:.1e} |")
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default="relu,tanh")
    ap.add_argument("--n-relu", type=int, default=4000)
    ap.add_argument("--n-tanh", type=int, default=1000)
    ap.add_argument("--depth", type=int, default=10)
    ap.add_argument("--input-dim", type=int, default=32)
    ap.add_argument("--relu-W-std", type=float, default=2 ** 0.5)
    ap.add_argument("--relu-b-std", type=float, default=0.1)
    ap.add_argument("--tanh-W-std", type=float, default=1.0)
    ap.add_argument("--tanh-b-std", type=float, default=0.05)
    ap.add_argument("--deg", type=int, default=25, help="ElementwiseNumerical deg for the timed tanh run (NT's default)")
    ap.add_argument("--ref-degs", type=lambda s: [int(v) for v in s.split(",") if v], default=[50, 100])
    ap.add_argument("--ref-n", type=int, default=60, help="subset size for the references (predict is O(N²) slow)")
    ap.add_argument("--nt-batch-size", type=int, default=250, help="nt.batch block size for the tanh case")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rounds-relu", type=int, default=2, help="alternate NT / deepeft this many times (relu case)")
    ap.add_argument("--rounds-tanh", type=int, default=1, help="the same for the tanh case (NT takes minutes per call)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--nt-python", default=str(REPO / "bench/.venvs/nt/bin/python"))
    ap.add_argument("--workdir", default="/tmp/deepeft-bench-theory")
    ap.add_argument("--json", default=str(HERE / "results.json"))
    args = ap.parse_args()

    cpus = _set_threads(args.threads)
    import numpy as np
    import torch
    torch.set_num_threads(args.threads)
    import deepeft

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    header = {"machine": machine_info(), "cpus_used": cpus, "threads": args.threads,
              "XLA_FLAGS": os.environ["XLA_FLAGS"], "torch": torch.__version__, "numpy": np.__version__,
              "deepeft": getattr(deepeft, "__version__", "?"), "deepeft_git": git_rev(),
              "started": time.strftime("%Y-%m-%d %H:%M:%S"), "argv": sys.argv[1:]}
    print(json.dumps(header["machine"]), flush=True)
    results = []
    for case in args.cases.split(","):
        if case == "relu":
            r = run_case(args, "relu", "relu", args.n_relu, args.relu_W_std, args.relu_b_std, work, args.rounds_relu)
        elif case == "tanh":
            r = run_case(args, "tanh", "tanh", args.n_tanh, args.tanh_W_std, args.tanh_b_std, work, args.rounds_tanh)
            r["nt_deg"] = args.deg
            r["nt_batch_size"] = args.nt_batch_size
        else:
            raise SystemExit(f"unknown case {case!r} (relu, tanh)")
        results.append(r)
        print(json.dumps({"case": case, "speedup": r["speedup"], "deepeft_vs_nt": r["deepeft_vs_nt"]}), flush=True)
    out = {**header, "finished": time.strftime("%Y-%m-%d %H:%M:%S"), "results": results, "table": table(results)}
    Path(args.json).write_text(json.dumps(out, indent=1))
    print(out["table"])
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
