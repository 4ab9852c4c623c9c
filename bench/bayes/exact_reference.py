"""Exact finite-(nβ, γ) λ̂ of the benchmark DLN, the reference the SGLD tools are scored against.

    python bench/bayes/exact_reference.py            (after run_all.py has written the problems file)

Two independent exact computations of E[nβ(L_n − L_n(w*))] under the benchmark's posterior
(nβ = n/log n, γ = 100, w* = the rank-10 factor point, Σ = xᵀx/n of the benchmark data):

* ``dln_gibbs``: the blocked Gibbs sampler (deepeft.bayes.dln_gibbs);
* MALA (Metropolis-adjusted, no step-size bias) on a 100-row data set x₂ = 10·Σ^½ with the same
  Σ, hence the same L_n(w) − L_n(w*) as a function of w (full batch is affordable on 100 rows).

Also: the plain-SGLD step-size / minibatch decomposition (full batch vs batch 100 at two ε) and the
exact expectation at other (nβ, γ), showing how far γ = 100 sits from Aoyagi's λ.  Prints JSON.
"""
import copy
import json
import math
import os
import sys
import time
import warnings

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from problems import DLN_RANK, DLN_WIDTHS, load, nll  # noqa: E402


def main():
    torch.set_num_threads(2)
    warnings.simplefilter("ignore")
    from deepeft.bayes import dln_gibbs, estimate_llc

    model, x, y, s = load(os.path.join(ROOT, "bench/.venvs/bayes_problems.pt"), "dln")
    n = x.shape[0]
    t = n / math.log(n)
    xd = x.double()
    Sig = xd.T @ xd / n
    out = {"nbeta": t, "localization": s["gamma"], "widths": DLN_WIDTHS, "rank": DLN_RANK}
    t0 = time.perf_counter()
    g = dln_gibbs(DLN_WIDTHS, t, s["gamma"], rank=DLN_RANK, input_cov=Sig.numpy(), num_chains=8, num_sweeps=800, seed=0)
    out["gibbs"] = {"llc": g.llc_mean, "se": g.llc_se, "rhat": g.rhat, "ess": g.ess, "seconds": time.perf_counter() - t0,
                    "aoyagi_lambda": g.aoyagi_lambda, "signed_error_vs_aoyagi": g.signed_error}
    # MALA on a 100-row data set with the same input covariance (same posterior)
    ev, U = torch.linalg.eigh(Sig)
    x2 = math.sqrt(100) * (U * ev.clamp_min(0).sqrt()) @ U.T
    m64 = copy.deepcopy(model).double()
    with torch.no_grad():
        y2 = m64(x2)
    t0 = time.perf_counter()
    r = estimate_llc(m64, (x2, y2), nll, sampler="mala", lr=5e-5, localization=s["gamma"], nbeta=t, num_chains=8,
                     num_draws=300, num_burnin_steps=2000, num_steps_bw_draws=10, batch_size=100, seed=0)
    out["mala_same_posterior"] = {"llc": r.llc_mean, "se": r.llc_se, "rhat": r.diagnostics["rhat"],
                                  "acceptance": float(sum(r.diagnostics["mala_acceptance"]) / 8),
                                  "seconds": time.perf_counter() - t0}
    # SGLD bias decomposition: discretisation (full batch, same posterior) and minibatch noise (bench data)
    sg = []
    for lr in (5e-5, 2.5e-5):
        a = estimate_llc(m64, (x2, y2), nll, lr=lr, localization=s["gamma"], nbeta=t, num_chains=8, num_draws=300,
                         num_burnin_steps=2000, num_steps_bw_draws=10, batch_size=100, seed=0)
        b = estimate_llc(model, (x, y), nll, lr=lr, localization=s["gamma"], nbeta=t, num_chains=8,
                         num_draws=2000, num_burnin_steps=2000, batch_size=100, seed=0)
        sg.append({"lr": lr, "full_batch": [a.llc_mean, a.llc_se], "batch_100": [b.llc_mean, b.llc_se]})
    out["sgld"] = sg
    grid = []
    for tt, gg in ((t, 100.0), (1e4, 100.0), (t, 10.0), (1e4, 10.0)):
        q = dln_gibbs(DLN_WIDTHS, tt, gg, rank=DLN_RANK, input_cov=Sig.numpy(), num_chains=4, num_sweeps=300, seed=1)
        grid.append({"nbeta": tt, "localization": gg, "llc": q.llc_mean, "se": q.llc_se, "signed_error_vs_aoyagi": q.signed_error})
    out["gibbs_grid"] = grid
    print(json.dumps(out, indent=1))
    with open(os.path.join(HERE, "exact_reference.json"), "w") as fh:
        json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
