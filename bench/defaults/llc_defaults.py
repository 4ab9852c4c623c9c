"""Issue 11 item 3: measure what `estimate_llc` / `deepeft llc` give with candidate defaults.

Deep linear networks with whitened inputs and a noise-free teacher (loss gaussian_nll, so
nβ(L_n − L_n(w*)) = (nβ/2)‖W − W*‖²_F exactly): the exact finite-nβ, finite-γ λ̂ comes from the blocked
Gibbs sampler (dln_gibbs) and the asymptotic one from Aoyagi's formula.  For each setting we record
λ̂ ± MCSE, R̂, the localisation share q = γ·E‖w − w*‖²/P, the chosen lr and the wall time.

    PYTHONPATH=. python3 bench/defaults/llc_defaults.py [--quick]
"""
import math
import sys
import time
import warnings

import torch

sys.path.insert(0, "tests/bayes")
from bayes_helpers import dln, rank_r_point, whitened_inputs  # noqa: E402

from deepeft.bayes import aoyagi_dln, calibrate, default_nbeta, dln_gibbs, estimate_llc  # noqa: E402

torch.set_num_threads(1)


def problem(widths, rank, n):
    m = rank_r_point(widths, rank) if rank else dln(widths)
    x = whitened_inputs(n, widths[0])
    with torch.no_grad():
        y = m(x)
    return m, x, y


def run(widths, rank, n, gamma, chains, draws, lr="auto"):
    m, x, y = problem(widths, rank, n)
    t0 = time.time()
    with warnings.catch_warnings(record=True) as wl:
        warnings.simplefilter("always")
        if lr == "auto":
            cal = calibrate(m, (x, y), "gaussian_nll", localization=gamma, seed=0)
            lr = cal.lr
        r = estimate_llc(m, (x, y), "gaussian_nll", localization=gamma, lr=lr, num_chains=chains, num_draws=draws, seed=1)
    wall = time.time() - t0
    P = sum(p.numel() for p in m.parameters())
    q = gamma * r.diagnostics["mean_sq_distance"] / P
    nb = default_nbeta(n)
    g = dln_gibbs(widths, nb, gamma, rank=rank, num_chains=8, num_sweeps=3000, seed=0)
    lam = float(aoyagi_dln(widths, rank)[0])
    print(f"{str(widths):<14} r={rank} n={n} γ={gamma:<5g} {chains}×{draws:<5d} lr={lr:.3g}  λ̂={r.llc_mean:7.3f} ± {r.llc_se:.3f}  "
          f"Gibbs(γ)={g.llc_mean:6.3f} ± {g.llc_se:.3f}  Aoyagi={lam:g}  R̂={r.diagnostics['rhat']:.3f}  q={q:.2f}  ok={r.ok}  "
          f"{wall:.1f}s  warnings={len(r.diagnostics['warnings'])}", flush=True)


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    for gamma in (100.0, 10.0, 1.0):
        for chains, draws in ((4, 200), (8, 1000)):
            run([5, 4, 5], 0, 1000, gamma, chains, draws)
    if not quick:
        for gamma in (100.0, 1.0):
            run([10] * 4, 5, 1000, gamma, 8, 1000)
