import math, sys, time, warnings
import numpy as np, torch
from scipy.special import exp1
sys.path.insert(0, "tests/bayes")
from bayes_helpers import dln, whitened_inputs
from deepeft.bayes import calibrate, estimate_llc, sample
torch.set_num_threads(1)
def exact(t):
    c = 1/(2*t); return 1 + c - 1/(math.exp(c)*exp1(c))
n = 1000
x = whitened_inputs(n, 2); y = torch.zeros(n, 2, dtype=torch.float64)
for nb in [144.76, 1e3, 1e4]:
    m = dln([2,1,2])
    t0=time.time()
    with warnings.catch_warnings(record=True) as wl:
        warnings.simplefilter("always")
        cal = calibrate(m, (x,y), "gaussian_nll", nbeta=nb, localization=1.0, seed=0)
        r = estimate_llc(m, (x,y), "gaussian_nll", nbeta=nb, localization=1.0, lr=cal.lr, num_chains=8, num_draws=2000, seed=1)
    print(nb, "lr", cal.lr, "llc", r.llc_mean, "+-", r.llc_se, "exact", exact(nb), "rel", r.llc_mean/exact(nb)-1, "rhat", r.diagnostics["rhat"], [str(w.message)[:60] for w in wl], time.time()-t0)
    print(cal.summary()) if "-v" in sys.argv else None
