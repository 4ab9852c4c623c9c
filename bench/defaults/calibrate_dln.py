"""Issue 11 items 1–2: λ̂ at the step `calibrate` chooses, against the exact value.

[2,1,2] deep linear network at w* = 0, whitened inputs, y = 0, γ = 1, n = 1000 (batch 512): the exact
E[λ̂] = 1 + c − 1/(e^c E₁(c)), c = 1/(2nβ) (tests/bayes/test_defaults_calibrate.py derives it).

    PYTHONPATH=. python3 bench/defaults/calibrate_dln.py [-v]     (-v prints calibrate's tables)
"""
import math
import sys
import time
import warnings

import torch
from scipy.special import exp1

sys.path.insert(0, "tests/bayes")
from bayes_helpers import dln, whitened_inputs  # noqa: E402

from deepeft.bayes import calibrate, estimate_llc  # noqa: E402

torch.set_num_threads(1)


def exact(t):
    c = 1 / (2 * t)
    return 1 + c - 1 / (math.exp(c) * exp1(c))


if __name__ == "__main__":
    n = 1000
    x, y = whitened_inputs(n, 2), torch.zeros(n, 2, dtype=torch.float64)
    for nb in [144.76, 1e3, 1e4, 1e5, 1e6]:
        t0 = time.time()
        with warnings.catch_warnings(record=True) as wl:
            warnings.simplefilter("always")
            cal = calibrate(dln([2, 1, 2]), (x, y), "gaussian_nll", nbeta=nb, localization=1.0, seed=0)
            r = estimate_llc(dln([2, 1, 2]), (x, y), "gaussian_nll", nbeta=nb, localization=1.0, lr=cal.lr,
                             num_chains=8, num_draws=2000, seed=1)
        step_warn = any("StepSizeWarning" in type(w.message).__name__ for w in wl)
        print(f"nβ={nb:<8g} lr={cal.lr:.3g}  λ̂={r.llc_mean:.4f} ± {r.llc_se:.4f}  exact={exact(nb):.4f}  "
              f"rel={r.llc_mean / exact(nb) - 1:+.3f} ({(r.llc_mean - exact(nb)) / r.llc_se:+.1f}σ)  "
              f"R̂={r.diagnostics['rhat']:.3f}  StepSizeWarning={step_warn}  {time.time() - t0:.1f}s", flush=True)
        if "-v" in sys.argv:
            print(cal.summary())
