"""Where the infinite-width prediction stops holding: control-variate deviation of the trained
ensemble mean from the frozen-NTK mean, and the NTK change, over widths (ReLU, L = 3, critical;
4 training / 2 test inputs of 'sine_sphere', GD with η = ½ · 2/λ_max(Θ̃), 50 steps).

    PYTHONPATH=. python bench/training/width_scan.py relu 4096 16,32,64,128 > out.txt
"""
import json
import sys
import time

import torch

from deepeft.datasets import load_dataset
from deepeft.ensemble.training_check import width_scan
from deepeft.theory import critical_spec
from deepeft.theory.training import lr_bound_for

act, M, widths = sys.argv[1], int(sys.argv[2]), [int(w) for w in sys.argv[3].split(",")]
torch.set_num_threads(1)
spec = critical_spec(act, 3, 64, 4)
d = load_dataset("sine_sphere", 4, 2, input_dim=4)
b = lr_bound_for(spec, d.x_train)
t0 = time.time()
r = width_scan(spec, d.x_train, d.y_train, d.x_test, widths, ensemble=M, ntk=True, lr=0.5 * b, steps=50, record=[0, 50])
print(time.time() - t0)
print(json.dumps({k: r[k] for k in ("widths", "n_dev", "se", "fit", "dtheta_rms", "dtheta_mean", "verdict",
                                    "dtheta_rms_slope", "dtheta_mean_slope")}, indent=0))
