"""Trained ensembles (deepeft.ensemble.training) vs the frozen-NTK theory and exact identities."""
import math
import warnings

import numpy as np
import pytest
import torch

from deepeft.core.errors import ParameterError
from deepeft.datasets import load_dataset
from deepeft.ensemble.training import output_ntk, train_ensemble
from deepeft.ensemble.training_check import compare_training, control_variate_mean, prediction_for, train_check
from deepeft.nets import BatchedMLP
from deepeft.theory import critical_spec
from deepeft.theory.training import StabilityWarning, lr_bound_for


def _data(NA=4, ND=3, n0=4, seed=0, n_out=1):
    return load_dataset("sine_sphere", NA, ND, input_dim=n0, output_dim=n_out, seed=seed)


@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_gd_ensemble_matches_frozen_ntk(act):
    """Mean and variance over initialisations on every test input at t = 0, 5, 40 GD steps, within
    4σ (n = 128, L = 3, critical; the O(1/n) deviation is below the MC error at M = 256)."""
    d = _data()
    spec = critical_spec(act, 3, 128, 4)
    lr = 0.5 * lr_bound_for(spec, d.x_train)
    cmp, tr, pred = train_check(spec, d.x_train, d.y_train, d.x_test, d.y_test, ensemble=256, lr=lr, steps=40,
                                record=[0, 5, 40], seed=1)
    assert not tr.diverged
    for j in range(3):
        st = tr.stats("test", j)
        z_m = (st["mean"] - pred.mean[j]) / st["se_mean"]
        z_v = (st["var"][:, 0] - pred.var[j]) / st["se_var"][:, 0]
        assert np.all(np.abs(z_m) < 4), (j, z_m)
        assert np.all(np.abs(z_v) < 4), (j, z_v)
    assert cmp.max_abs_z < 4 and not cmp.flagged
    # the control-variate estimate of the mean is unbiased and much sharper
    assert all(abs(r["z_mean_cv"]) < 4 for r in cmp.rows)
    assert max(r["se_mean_cv"] for r in cmp.rows) < 0.5 * min(r["se_mean"] for r in cmp.rows)
    # the loss curve at t = 0 and t = 5
    for j in (0, 1):
        assert abs(cmp.loss["mean"][j] - pred.loss[j]) < 4 * cmp.loss["se"][j]


@pytest.mark.parametrize("kind", ["residual", "mixed"])
def test_other_architectures_match_frozen_ntk(kind):
    """Residual ReLU MLP (ξ = 0.7, γ = 0.5) and a GELU MLP with unequal widths, per-layer C_W, C_b, λ_b
    in the 'standard' parameterisation: mean and variance within 4σ after 15 GD steps."""
    from deepeft.core.spec import MLPSpec
    d = load_dataset("teacher", 4, 3, input_dim=4, seed=0)
    if kind == "residual":
        spec = critical_spec("relu", 4, 96, 4, residual=(0.7, 0.5))
    else:
        spec = MLPSpec.make("gelu", 3, [80, 112], 4, C_W=[1.5, 1.8, 1.2], C_b=[0.1, 0.0, 0.2],
                            parameterization="standard", lambda_b=[1, 0.5, 2])
    lr = 0.5 * lr_bound_for(spec, d.x_train)
    cmp, tr, _ = train_check(spec, d.x_train, d.y_train, d.x_test, d.y_test, ensemble=192, lr=lr, steps=15,
                             record=[0, 15], seed=4)
    assert cmp.max_abs_z < 4, cmp.table()


def test_vector_outputs_and_sgd():
    """n_L = 2, minibatch SGD (batch 2 of 4), against the frozen-NTK SGD propagation."""
    d = _data(n_out=2)
    spec = critical_spec("relu", 3, 96, 4, output_width=2)
    lr = 0.5 * lr_bound_for(spec, d.x_train)
    cmp, tr, pred = train_check(spec, d.x_train, d.y_train, d.x_test, ensemble=192, lr=lr, steps=12,
                                algorithm="sgd", batch_size=2, record=[0, 12], seed=2)
    assert len(cmp.rows) == 3 * 2
    assert cmp.max_abs_z < 4, cmp.table()


def test_labels_reproduced_when_trained():
    d = _data(NA=3, ND=1)
    spec = critical_spec("tanh", 3, 64, 4)
    lr = 0.9 * lr_bound_for(spec, d.x_train)
    tr = train_ensemble(spec, d.x_train, d.y_train, d.x_test, ensemble=8, lr=lr, steps=20000, tol=1e-14,
                        record=[0, 20000])
    assert np.all(tr.stopped_at > 0)
    np.testing.assert_allclose(tr.train_out[:, -1], np.broadcast_to(d.y_train, tr.train_out[:, -1].shape), atol=2e-7)
    assert np.all(tr.loss[:, -1] <= 1e-14)


def test_flow_is_the_small_step_limit_and_rk4_error():
    d = _data(NA=3, ND=2)
    spec = critical_spec("tanh", 3, 32, 4)
    b = lr_bound_for(spec, d.x_train)
    tau = b
    kw = dict(ensemble=4, seed=3)
    f = train_ensemble(spec, d.x_train, d.y_train, d.x_test, algorithm="flow", time_horizon=tau, record=[0, tau], **kw)
    f2 = train_ensemble(spec, d.x_train, d.y_train, d.x_test, algorithm="flow", time_horizon=tau, record=[0, tau],
                        flow_step=0.125, **kw)
    err_rk4 = np.abs(f.test_out[:, -1] - f2.test_out[:, -1]).max()
    moved = np.abs(f.test_out[:, -1] - f.test_out[:, 0]).max()
    assert err_rk4 < 1e-4 * moved       # stated bound: (hλ)⁵/120 per step
    errs = []
    for k in (20, 40):
        g = train_ensemble(spec, d.x_train, d.y_train, d.x_test, lr=tau / k, steps=k, record=[0, k], **kw)
        errs.append(np.abs(g.test_out[:, -1] - f2.test_out[:, -1]).max())
    assert errs[1] / errs[0] == pytest.approx(0.5, abs=0.08)   # GD → flow at O(η)


def test_reproducible_and_chunking_invariant():
    d = _data(NA=4, ND=2)
    spec = critical_spec("relu", 3, 32, 4)
    lr = 0.5 * lr_bound_for(spec, d.x_train)
    for alg, extra in (("gd", {"lr": lr}), ("sgd", {"batch_size": 2, "lr": lr}), ("adam", {"lr": 1e-3})):
        kw = dict(ensemble=40, steps=6, record=[0, 3, 6], algorithm=alg, seed=5, ntk=alg == "gd", **extra)
        a = train_ensemble(spec, d.x_train, d.y_train, d.x_test, **kw)
        b = train_ensemble(spec, d.x_train, d.y_train, d.x_test, **kw)
        c = train_ensemble(spec, d.x_train, d.y_train, d.x_test, chunk_size=8, **kw)
        assert c.meta["chunk_size"] == 8
        for x in (a, b, c):
            assert np.all(np.isfinite(x.test_out))
        for name in ("train_out", "test_out", "loss") + (("ntk",) if alg == "gd" else ()):
            assert np.array_equal(getattr(a, name), getattr(b, name)), (alg, name)
            assert np.array_equal(getattr(a, name), getattr(c, name)), (alg, name)
        other = train_ensemble(spec, d.x_train, d.y_train, d.x_test, **{**kw, "seed": 6})
        assert not np.array_equal(a.test_out, other.test_out)


def test_float32_agrees_with_the_prediction():
    """float32 draws other networks than float64 (the generator fills each dtype differently), so
    the check is statistical: the float32 ensemble against the frozen-NTK prediction."""
    d = _data()
    spec = critical_spec("relu", 3, 64, 4)
    lr = 0.5 * lr_bound_for(spec, d.x_train)
    cmp, tr, _ = train_check(spec, d.x_train, d.y_train, d.x_test, ensemble=128, lr=lr, steps=10, record=[0, 10],
                             dtype="float32")
    assert tr.meta["dtype"] == "float32" and np.all(np.isfinite(tr.test_out))
    assert cmp.max_abs_z < 4, cmp.table()


def test_output_ntk_equals_forward_equation():
    d = _data()
    spec = critical_spec("tanh", 3, 16, 4, parameterization="standard", lambda_b=0.5, lambda_W=2.0)
    net = BatchedMLP(spec)
    ps = net.init(3, seed=0)
    x = torch.as_tensor(np.concatenate([d.x_train, d.x_test]))
    torch.testing.assert_close(output_ntk(net, ps, x), net.ntk(ps, x), rtol=1e-12, atol=1e-12)


def test_divergence_is_caught_and_reported():
    d = _data()
    spec = critical_spec("relu", 3, 32, 4)
    b = lr_bound_for(spec, d.x_train)
    with pytest.warns(StabilityWarning, match=f"{b:.6g}"), pytest.warns(RuntimeWarning, match="diverged"):
        tr = train_ensemble(spec, d.x_train, d.y_train, d.x_test, ensemble=8, lr=20 * b, steps=200, record=[0, 200])
    assert len(tr.diverged) == 8 and all(0 < s <= 200 for s in tr.diverged.values())
    assert np.all(np.isnan(tr.test_out[:, -1])) and np.all(np.isfinite(tr.test_out[:, 0]))
    with pytest.raises(ParameterError, match="networks that did not diverge"):
        tr.stats("test", -1)
    with pytest.raises(ParameterError, match="certain"):
        train_ensemble(spec, d.x_train, d.y_train, ensemble=2, lr=200 * b, steps=5)


@pytest.mark.parametrize("kw,match", [
    (dict(ensemble=1), "ensemble"), (dict(steps=0), "steps"), (dict(lr=0.0), "lr"), (dict(lr=-0.1), "lr"),
    (dict(y_train=np.array([np.nan, 0, 0, 0])), "y_train"), (dict(y_train=np.zeros((4, 2))), "y_train"),
    (dict(x_test=np.zeros((2, 3))), "x_test"), (dict(x_train=np.zeros((0, 4)), y_train=np.zeros(0)), "x_train"),
    (dict(device="cuda"), "device"), (dict(algorithm="lbfgs"), "algorithm"),
    (dict(algorithm="sgd", batch_size=9), "batch_size"), (dict(dtype="float16"), "dtype"),
    (dict(record=[0, 99]), "record"), (dict(algorithm="flow"), "time_horizon"),
])
def test_bad_input(kw, match):
    if kw.get("device") == "cuda" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    d = _data()
    spec = critical_spec("relu", 2, 8, 4)
    args = dict(x_train=d.x_train, y_train=d.y_train, x_test=d.x_test, ensemble=4, lr=0.05, steps=3)
    args.update(kw)
    with pytest.raises(ParameterError, match=match):
        train_ensemble(spec, args.pop("x_train"), args.pop("y_train"), args.pop("x_test"), **args)


def test_comparison_needs_matching_times():
    d = _data()
    spec = critical_spec("relu", 2, 8, 4)
    tr = train_ensemble(spec, d.x_train, d.y_train, d.x_test, ensemble=4, lr=0.05, steps=3, record=[0, 3])
    pred = prediction_for(tr)
    pred.times = pred.times + 1
    with pytest.raises(ParameterError, match="record times"):
        compare_training(pred, tr)
    tr2 = train_ensemble(spec, d.x_train, d.y_train, d.x_test, ensemble=4, lr=0.05, steps=3, record=[3])
    with pytest.raises(ParameterError, match="include 0"):
        control_variate_mean(prediction_for(tr2), tr2)


@pytest.mark.parametrize("act,C_W,C_b", [("relu", 2.0, 0.0), ("relu", 1.6, 0.2), ("tanh", 1.6, 0.3)])
def test_generalisation_error_on_and_off_criticality(act, C_W, C_b):
    """Predicted expected test MSE (bias² + variance over initialisations) vs the measured ensemble's
    mean test MSE ± SE, at criticality and off it (ordered ReLU, chaotic tanh), GD after 15 steps."""
    from deepeft.core.spec import MLPSpec
    d = load_dataset("random_features", 4, 4, input_dim=4, seed=1)
    spec = MLPSpec.make(act, 3, 96, 4, C_W=C_W, C_b=C_b)
    lr = 0.5 * lr_bound_for(spec, d.x_train)
    _, tr, pred = train_check(spec, d.x_train, d.y_train, d.x_test, d.y_test, ensemble=192, lr=lr, steps=15,
                              record=[0, 15], seed=7)
    mse = np.mean((tr.test_out[:, -1] - d.y_test[None]) ** 2, axis=(1, 2))
    se = mse.std(ddof=1) / math.sqrt(len(mse))
    assert abs(mse.mean() - pred.test_mse[-1]) < 4 * se, (mse.mean(), se, pred.test_mse[-1])
    assert pred.test_mse[-1] == pytest.approx(pred.bias2[-1] + pred.variance[-1])
