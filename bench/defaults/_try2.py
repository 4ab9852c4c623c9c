import sys, warnings, time, torch
sys.path.insert(0, "tests/bayes")
from bayes_helpers import dln, whitened_inputs
from deepeft.bayes import calibrate
torch.set_num_threads(1)
n=1000; x = whitened_inputs(n, 2); y = torch.zeros(n, 2, dtype=torch.float64)
for nb in [1e5, 1e6]:
    t0=time.time()
    with warnings.catch_warnings(record=True) as wl:
        warnings.simplefilter("always")
        cal = calibrate(dln([2,1,2]), (x,y), "gaussian_nll", nbeta=nb, localization=1.0, seed=0)
    print(nb, cal.lr, cal.reason, [str(w.message)[:80] for w in wl], time.time()-t0)
