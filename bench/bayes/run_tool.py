"""Run one tool on one problem; prints one JSON line.  Usage: python run_tool.py TOOL KIND problems.pt

Every tool gets the same chains × draws × batch size, step size ε, localisation γ and nβ = n/log n
(passed explicitly), one torch thread (``BENCH_THREADS`` to change), float32, CPU.
"""
import json
import math
import os
import sys
import time

import torch

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from problems import load, nll  # noqa: E402


def main():
    tool, kind, path = sys.argv[1], sys.argv[2], sys.argv[3]
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    model, x, y, s = load(path, kind)
    n = x.shape[0]
    nbeta = n / math.log(n)
    C, D, B, b, lr, gamma = s["chains"], s["draws"], s["burnin"], s["batch"], s["lr"], s["gamma"]
    t0 = time.perf_counter()
    if tool in ("deepeft", "deepeft_rr", "deepeft_builtin"):
        from deepeft.bayes import estimate_llc

        # deepeft_rr: the same budget with step-size extrapolation (half the chains at lr/2);
        # deepeft_builtin: the same loss named by its built-in string 'gaussian_nll' (½‖y − f‖²
        # summed over outputs, mean over samples — the function nll above), whose output gradient is
        # closed-form instead of vmap + autograd of a user callable
        loss = "gaussian_nll" if tool == "deepeft_builtin" else nll
        r = estimate_llc(model, (x, y), loss, lr=lr, localization=gamma, nbeta=nbeta, num_chains=C, num_draws=D,
                         num_burnin_steps=B, batch_size=b, seed=int(os.environ.get("BENCH_SEED", "0")),
                         extrapolate_lr=(tool == "deepeft_rr"))
        llc, per = r.llc_mean, r.llc_per_chain.tolist()
        extra = {"rhat": r.diagnostics["rhat"], "ess": r.diagnostics["ess"], "llc_se": r.llc_se}
    elif tool == "deepeft_gibbs":
        # exact blocked Gibbs sweeps (deep linear networks only; full data, no step size): a different
        # budget — 4 chains × (100 burn-in + 300 kept) sweeps — for the accuracy-per-second comparison
        from deepeft.bayes import estimate_llc

        if kind != "dln":
            raise SystemExit("deepeft_gibbs: deep linear networks only")
        r = estimate_llc(model, (x, y), "gaussian_nll", sampler="gibbs", localization=gamma, nbeta=nbeta, num_chains=C,
                         num_draws=300, num_burnin_steps=100, seed=int(os.environ.get("BENCH_SEED", "0")))
        llc, per = r.llc_mean, r.llc_per_chain.tolist()
        extra = {"rhat": r.diagnostics["rhat"], "ess": r.diagnostics["ess"], "llc_se": r.llc_se}
    elif tool == "devinterp":
        from torch.utils.data import DataLoader, TensorDataset
        from devinterp.optim import SGLD
        from devinterp.slt.sampler import estimate_learning_coeff_with_summary

        loader = DataLoader(TensorDataset(x, y), batch_size=b, shuffle=True)
        torch.manual_seed(0)
        r = estimate_learning_coeff_with_summary(
            model, loader, evaluate=lambda m, data: nll(m(data[0]), data[1]), sampling_method=SGLD,
            optimizer_kwargs=dict(lr=lr, localization=gamma, nbeta=nbeta), num_chains=C, num_draws=D,
            num_burnin_steps=B, num_steps_bw_draws=1, cores=1, seed=0, device="cpu", verbose=False)
        llc = float(r["llc/mean"])
        per = [float(v) for v in r["llc/means"]] if "llc/means" in r else []
        if "loss/trace" in r:  # devinterp 1.x: per-chain llc from its (chains, draws) loss trace
            tr = torch.as_tensor(r["loss/trace"], dtype=torch.float64)
            per = (nbeta * (tr.mean(1) - r.get("init_loss", float("nan")))).tolist() if "init_loss" in r else per
        extra = {}
    elif tool == "canonical":
        import itertools

        if not hasattr(itertools, "batched"):  # canonical-interp 0.1.5 imports itertools.batched (Python >= 3.12)
            def _batched(iterable, k):
                it = iter(iterable)
                while chunk := tuple(itertools.islice(it, k)):
                    yield chunk

            itertools.batched = _batched
        from torch.utils.data import DataLoader, TensorDataset
        from canonical_interp import LLCEstimator

        loader = DataLoader(TensorDataset(x, y), batch_size=b, shuffle=True)
        est = LLCEstimator(draws=D, chains=C, burnin_steps=B, steps_bw_draws=1, learning_rate=lr,
                           localization=gamma, nbeta=nbeta)
        llc = float(est.estimate_llc(model, loader, criterion_fn=nll, seed=0, show_progress=False))
        per = [float(v) for v in est.get_metrics()["llcs"]]
        extra = {}
    else:
        raise SystemExit(f"unknown tool {tool}")
    wall = time.perf_counter() - t0
    print(json.dumps({"tool": tool, "kind": kind, "wall_s": wall, "llc": llc, "per_chain": per, **extra}))


if __name__ == "__main__":
    main()
