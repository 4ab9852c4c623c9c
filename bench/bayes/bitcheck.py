"""Record every sampler's numbers for fixed seeds, to compare two versions of deepeft bit for bit.

    PYTHONPATH=/path/to/version_a python3 bench/bayes/bitcheck.py record a.npz
    PYTHONPATH=/path/to/version_b python3 bench/bayes/bitcheck.py record b.npz
    python3 bench/bayes/bitcheck.py compare a.npz b.npz

Each scenario runs ``sample`` (SGLD, per-chain ε/nβ, pSGLD, MALA, the MH diagnostic, two-batch and
full-data losses, observables, a non-Sequential model, a DataLoader, diverging chains, DLN-Gibbs,
and interrupted-then-resumed checkpointed runs) or ``estimate_llc`` and stores every array of the
result; ``compare`` reports any scenario whose arrays differ in a single bit.
"""
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "bayes"))
from test_bayes_checkpoint import interrupting_loss  # noqa: E402  (a loss that sends Ctrl-C at its k-th call)

FIELDS = ("loss_trace", "step_loss", "distance_trace", "param_draws", "pair_loss_trace", "observables",
          "mala_acceptance", "diverged", "divergence_step", "final_flat", "init_loss", "curvature")


def _mlp(dtype=torch.float64):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2)).to(dtype)
    x, y = torch.randn(300, 3, dtype=dtype), torch.randn(300, 2, dtype=dtype)
    return m, x, y


def _dln():
    torch.manual_seed(1)
    m = nn.Sequential(nn.Linear(4, 3, bias=False), nn.Linear(3, 4, bias=False)).double()
    x = torch.randn(200, 4, dtype=torch.float64)
    with torch.no_grad():
        y = m(x) + 0.1 * torch.randn(200, 4, dtype=torch.float64)
    return m, x, y


class _Res(nn.Module):  # not an nn.Sequential: the vmapped functional_call path
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(3, 6), nn.Linear(6, 2)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)) + 0.1 * self.a(x))


def scenarios():
    from deepeft.bayes import estimate_llc, sample

    m, x, y = _mlp()
    base = dict(lr=1e-3, localization=10.0, num_chains=3, num_draws=40, num_steps_bw_draws=3, num_burnin_steps=30,
                batch_size=32, seed=4)
    yield "sgld", lambda: sample(m, (x, y), "mse", **base)
    yield "sgld_f32", lambda: sample(*((lambda mm, xx, yy: (mm, (xx, yy)))(*_mlp(torch.float32))), "mse", **base)
    yield "sgld_perchain", lambda: sample(m, (x, y), "mse", **{**base, "lr": [1e-3, 5e-4, 2e-3], "nbeta": [50.0, 60.0, 70.0]})
    yield "sgld_auto_burnin_gamma0", lambda: sample(m, (x, y), "mse", **{**base, "localization": 0.0, "num_burnin_steps": "auto"})
    yield "sgld_full_obs_params", lambda: sample(m, (x, y), "mse", loss_eval="full", record_params=True,
                                                  observable=lambda out, t: out.mean(0), **base)
    yield "sgld_two_batch_mh", lambda: sample(m, (x, y), "mse", loss_eval="two_batch", mala_every=3, **base)
    yield "sgld_user_loss", lambda: sample(m, (x, y), lambda o, t: ((o - t) ** 2).mean(), **base)
    yield "psgld", lambda: sample(m, (x, y), "mse", precondition="rmsprop", **base)
    yield "psgld_mh", lambda: sample(m, (x, y), "mse", precondition="rmsprop", mala_every=2, loss_eval="two_batch", **base)
    yield "mala", lambda: sample(m, (x, y), "mse", sampler="mala", record_params=True, **{**base, "lr": 1e-4})
    yield "mala_perchain", lambda: sample(m, (x, y), "mse", sampler="mala", **{**base, "lr": [1e-4, 2e-4, 5e-5], "nbeta": [40.0, 50.0, 60.0]})
    yield "center_zero_init_center", lambda: sample(m, (x, y), "mse", center="zero", init="center", **base)
    yield "params_subset", lambda: sample(m, (x, y), "mse", params="2.*", **base)
    yield "diverging", lambda: sample(m, (x, y), "mse", check_stability=False, **{**base, "lr": [1e-3, 0.5, 1e-3], "localization": 1.0})
    yield "stability_stop", lambda: sample(m, (x, y), "mse", **{**base, "lr": [1e-3, 5.0, 1e-3]})
    r = _Res().double()
    yield "generic_module", lambda: sample(r, (x, y), "mse", **base)
    yield "loader", lambda: sample(m, DataLoader(TensorDataset(x, y), batch_size=25, shuffle=True,
                                                 generator=torch.Generator().manual_seed(0)), "mse", **base)
    d, dx, dy = _dln()
    yield "gibbs", lambda: sample(d, (dx, dy), "gaussian_nll", sampler="gibbs", localization=5.0, num_chains=3,
                                  num_draws=30, num_burnin_steps=10, num_steps_bw_draws=2, seed=2, record_params=True)
    yield "gibbs_mse_perchain", lambda: sample(d, (dx, dy), "mse", sampler="gibbs", localization=5.0, num_chains=2,
                                               nbeta=[30.0, 60.0], num_draws=20, seed=3)
    yield "llc_sgld", lambda: estimate_llc(m, (x, y), "mse", lr=1e-3, localization=10.0, num_chains=3, num_draws=60, seed=1)
    yield "llc_mala", lambda: estimate_llc(m, (x, y), "mse", sampler="mala", lr=1e-4, localization=10.0, num_chains=2,
                                           num_draws=30, seed=1)
    yield "llc_gibbs", lambda: estimate_llc(d, (dx, dy), "gaussian_nll", sampler="gibbs", localization=5.0,
                                            num_chains=2, num_draws=30, seed=1)
    for name, variant in (("ckpt_sgld", {}),
                          ("ckpt_psgld", dict(precondition="rmsprop", loss_eval="two_batch", mala_every=3)),
                          ("ckpt_mala", dict(sampler="mala", lr=1e-4, observable=lambda out, t: out.mean(0)))):
        def run(variant=variant):
            kw = {**base, "record_params": True, **variant}
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "run.ckpt"
                try:
                    sample(m, (x, y), interrupting_loss(75), checkpoint=path, checkpoint_every=25, **kw)
                    raise RuntimeError("not interrupted")
                except KeyboardInterrupt:
                    pass
                return sample(m, (x, y), interrupting_loss(10 ** 9), checkpoint=path, checkpoint_every=25, **kw)
        yield name, run


def _arrays(res) -> dict:
    out = {}
    if hasattr(res, "loss_trace") and hasattr(res, "step_loss"):  # SampleResult
        for f in FIELDS:
            v = getattr(res, f, None)
            if v is None:
                continue
            out[f] = v.numpy() if isinstance(v, torch.Tensor) else np.asarray(v)
    else:  # LLCResult
        for f in ("llc_mean", "llc_se", "llc_std", "llc_per_chain", "loss_trace", "init_loss"):
            out[f] = np.asarray(getattr(res, f))
    return out


def record(path):
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    blob = {}
    for name, fn in scenarios():
        for k, v in _arrays(fn()).items():
            blob[f"{name}/{k}"] = v
        print(name, flush=True)
    np.savez(path, **blob)


def compare(a, b):
    A, B = np.load(a), np.load(b)
    bad = sorted(set(A.files) ^ set(B.files))
    for k in sorted(set(A.files) & set(B.files)):
        u, v = A[k], B[k]
        if u.shape != v.shape or u.dtype != v.dtype or u.tobytes() != v.tobytes():
            bad.append(k)
    scen = sorted({k.split("/")[0] for k in A.files})
    print(f"{len(scen)} scenarios, {len(A.files)} arrays compared; {len(bad)} differ" + (": " + ", ".join(bad) if bad else ""))
    for s in ("llc_sgld", "llc_mala", "llc_gibbs"):
        if f"{s}/llc_mean" in A.files:
            print(f"  {s}: λ̂ = {float(A[f'{s}/llc_mean']):.12g} vs {float(B[f'{s}/llc_mean']):.12g}")
    return 1 if bad else 0


if __name__ == "__main__":
    if sys.argv[1] == "record":
        record(sys.argv[2])
    else:
        sys.exit(compare(sys.argv[2], sys.argv[3]))
