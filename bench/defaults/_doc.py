import re, warnings, time
from pathlib import Path
src = re.search(r"```python\n(.*?)```", Path("docs/bayes.md").read_text(), re.S).group(1)
src = src.split("res = estimate_llc")[0]
ns = {}; exec(src, ns)
import torch
torch.set_num_threads(1)
from deepeft.bayes import estimate_llc
for kw in [dict(), dict(num_draws=2000), dict(num_steps_bw_draws=5)]:
    t0=time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = estimate_llc(ns["model"], (ns["x"], ns["y"]), "mse", **kw)
    print(kw, time.time()-t0); print(r.summary())
