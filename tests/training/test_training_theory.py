"""Frozen-NTK training theory vs exact linear algebra (no networks): deepeft.theory.training."""
import math
import warnings

import numpy as np
import pytest

from deepeft.core.errors import ParameterError
from deepeft.core.spec import MLPSpec
from deepeft.datasets import load_dataset
from deepeft.theory import critical_spec
from deepeft.theory.training import (StabilityWarning, frozen_kernels, frozen_ntk_solution, kernel_regression,
                                     lr_bound_for, nngp_posterior, predict_training)


def _setup(act="relu", n_out=1, NA=6, ND=3, n0=4, seed=0):
    spec = critical_spec(act, 3, 64, n0, output_width=n_out)
    d = load_dataset("sine_sphere", NA, ND, input_dim=n0, output_dim=n_out, seed=seed)
    return spec, d


def _iterate(K, Th, NA, y, lr, steps):
    """The frozen-NTK GD map applied step by step to the mean and the covariance (exact)."""
    N = K.shape[0]
    Tm = np.eye(N)
    Tm[:, :NA] -= lr * Th[:, :NA]
    m, C = np.zeros((N, y.shape[1])), K.copy()
    out = []
    for _ in range(steps + 1):
        out.append((m.copy(), C.copy()))
        m = Tm @ m + lr * Th[:, :NA] @ y
        C = Tm @ C @ Tm.T
    return out


@pytest.mark.parametrize("act,n_out", [("relu", 1), ("tanh", 2)])
def test_closed_form_equals_iterated_map(act, n_out):
    spec, d = _setup(act, n_out)
    lr = 0.7 * lr_bound_for(spec, d.x_train)
    times = [0, 1, 7, 60]
    p = predict_training(spec, d.x_train, d.y_train, d.x_test, times, lr=lr)
    K, Th = p.meta["K"], p.meta["Theta"]
    it = _iterate(K, Th, 6, d.y_train, lr, 60)
    for j, t in enumerate(times):
        m, C = it[t]
        np.testing.assert_allclose(p.mean[j], m[6:], atol=1e-12)
        np.testing.assert_allclose(p.cov[j], C[6:, 6:], atol=1e-12)
        np.testing.assert_allclose(p.train_mean[j], m[:6], atol=1e-12)
        np.testing.assert_allclose(p.train_var[j], np.diag(C[:6, :6]), atol=1e-12)
        loss = 0.5 * (np.sum((m[:6] - d.y_train) ** 2) + n_out * np.trace(C[:6, :6]))
        assert p.loss[j] == pytest.approx(loss, rel=1e-10, abs=1e-14)


def test_reference_numbers():
    """pdlt.md §6.1's worked example: m = 0.04688, Var = 0.31329 at t = ∞."""
    spec = MLPSpec.make("relu", 3, 64, 3, C_W=2.0, C_b=0.1, lambda_W=1.0, lambda_b=1.0)
    xa = [[1, 0.3, -0.5], [-0.4, 1.2, 0.2]]
    p = predict_training(spec, xa, [0.7, -0.4], [[0.5, 0.8, 0.6]], [math.inf], lr=0.1)
    assert p.mean[0, 0, 0] == pytest.approx(0.04688, abs=1e-5)
    assert p.var[0, 0] == pytest.approx(0.31329, abs=1e-5)


def test_trained_limit_interpolates_and_is_kernel_regression():
    spec, d = _setup("tanh", 2)
    lr = 0.5 * lr_bound_for(spec, d.x_train)
    p = predict_training(spec, d.x_train, d.y_train, d.x_test, [20000, math.inf], lr=lr)
    np.testing.assert_allclose(p.train_mean[-1], d.y_train, atol=1e-10)
    np.testing.assert_allclose(p.train_var[-1], 0, atol=1e-10)
    assert p.loss[-1] == pytest.approx(0, abs=1e-18)
    K, Th = p.meta["K"], p.meta["Theta"]
    m = np.linalg.solve(Th[:6, :6], d.y_train)
    np.testing.assert_allclose(p.mean[-1], Th[6:, :6] @ m, atol=1e-10)
    np.testing.assert_allclose(p.mean[-1], kernel_regression(Th[:6, :6], Th[6:, :6], d.y_train), atol=1e-10)
    # the book's covariance formula (pdlt.md §6.1)
    P = Th[6:, :6] @ np.linalg.inv(Th[:6, :6])
    cov = K[6:, 6:] - P @ K[:6, 6:] - (P @ K[:6, 6:]).T + P @ K[:6, :6] @ P.T
    np.testing.assert_allclose(p.cov[-1], cov, atol=1e-10)
    # independent of η, and reached by long training
    p2 = predict_training(spec, d.x_train, d.y_train, d.x_test, [math.inf], lr=lr / 3)
    np.testing.assert_allclose(p2.mean[0], p.mean[-1], atol=1e-12)
    np.testing.assert_allclose(p.mean[0], p.mean[-1], atol=1e-8)


def test_flow_is_the_small_step_limit_of_gd():
    spec, d = _setup("relu", 1)
    tau = 2.0
    f = predict_training(spec, d.x_train, d.y_train, d.x_test, [tau, math.inf], algorithm="flow")
    errs = []
    for eta in (0.02, 0.01, 0.005):
        g = predict_training(spec, d.x_train, d.y_train, d.x_test, [round(tau / eta)], lr=eta)
        errs.append(np.abs(g.mean[0] - f.mean[0]).max() + np.abs(g.var[0] - f.var[0]).max())
    assert errs[0] > 0 and errs[1] / errs[0] == pytest.approx(0.5, abs=0.03)   # O(η)
    assert errs[2] / errs[1] == pytest.approx(0.5, abs=0.03)
    g = predict_training(spec, d.x_train, d.y_train, d.x_test, [math.inf], lr=0.01)
    np.testing.assert_allclose(f.mean[-1], g.mean[0], atol=1e-12)


def test_nngp_posterior_exact():
    spec, d = _setup("tanh", 1)
    post = nngp_posterior(spec, d.x_train, d.y_train, d.x_test)
    K, _ = frozen_kernels(spec, np.concatenate([d.x_train, d.x_test]))
    KA, KDA = K[:6, :6], K[6:, :6]
    np.testing.assert_allclose(post.mean, KDA @ np.linalg.solve(KA, d.y_train), atol=1e-10)
    np.testing.assert_allclose(post.cov, K[6:, 6:] - KDA @ np.linalg.solve(KA, KDA.T), atol=1e-10)
    at_train = nngp_posterior(spec, d.x_train, d.y_train, d.x_train[:2])
    np.testing.assert_allclose(at_train.mean, d.y_train[:2], atol=1e-8)
    np.testing.assert_allclose(at_train.var, 0, atol=1e-8)
    noisy = nngp_posterior(spec, d.x_train, d.y_train, d.x_test, noise=0.3)
    np.testing.assert_allclose(noisy.mean, KDA @ np.linalg.solve(KA + 0.3 * np.eye(6), d.y_train), atol=1e-10)


def test_generalisation_error_is_bias2_plus_variance():
    """E over initialisations of the test MSE, from samples of the exact linear model."""
    spec, d = _setup("relu", 1, NA=5, ND=4)
    lr = 0.5 * lr_bound_for(spec, d.x_train)
    p = predict_training(spec, d.x_train, d.y_train, d.x_test, [3, math.inf], lr=lr, y_test=d.y_test)
    K, Th = p.meta["K"], p.meta["Theta"]
    rng = np.random.default_rng(1)
    z0 = rng.multivariate_normal(np.zeros(9), K, size=20000)
    for j, t in enumerate((3, math.inf)):
        if math.isinf(t):
            P = Th[5:, :5] @ np.linalg.inv(Th[:5, :5])
        else:
            lam, U = np.linalg.eigh(Th[:5, :5])
            P = Th[5:, :5] @ U @ np.diag((1 - (1 - lr * lam) ** t) / lam) @ U.T
        zt = z0[:, 5:] - (z0[:, :5] - d.y_train[:, 0]) @ P.T
        sq = np.mean((zt - d.y_test[:, 0]) ** 2, axis=1)
        assert abs(sq.mean() - p.test_mse[j]) < 4 * sq.std() / math.sqrt(len(sq))
        assert p.test_mse[j] == pytest.approx(p.bias2[j] + p.variance[j])


def test_singular_training_ntk():
    spec, d = _setup("relu", 1, NA=4, ND=2)
    xa = np.concatenate([d.x_train, d.x_train[:1]])
    ya = np.concatenate([d.y_train, d.y_train[:1]])
    with pytest.raises(ParameterError, match="condition number"):
        predict_training(spec, xa, ya, d.x_test, [math.inf], lr=0.1)
    pinv = predict_training(spec, xa, ya, d.x_test, [math.inf], lr=0.1, singular="pinv")
    ref = predict_training(spec, d.x_train, d.y_train, d.x_test, [math.inf], lr=0.1)
    np.testing.assert_allclose(pinv.mean, ref.mean, atol=1e-8)
    np.testing.assert_allclose(pinv.var, ref.var, atol=1e-8)
    # finite t needs no inverse: no error
    predict_training(spec, xa, ya, d.x_test, [10], lr=0.1)


def test_learning_rate_bound():
    spec, d = _setup("relu", 1)
    b = lr_bound_for(spec, d.x_train)
    with pytest.warns(StabilityWarning, match=f"{b:.6g}"):
        predict_training(spec, d.x_train, d.y_train, d.x_test, [5], lr=1.2 * b)
    with pytest.raises(ParameterError, match="2/λ_max"), warnings.catch_warnings():
        warnings.simplefilter("ignore", StabilityWarning)
        predict_training(spec, d.x_train, d.y_train, d.x_test, [math.inf], lr=1.2 * b)


@pytest.mark.parametrize("kw,match", [
    (dict(lr=0.0), "lr"), (dict(lr=-1.0), "lr"), (dict(times=[-1]), "times"), (dict(times=[1.5]), "times"),
    (dict(y_train=np.full(6, np.nan)), "y_train"), (dict(y_train=np.zeros((6, 3))), "y_train"),
    (dict(x_test=np.zeros((2, 5))), "x_test"), (dict(x_train=np.zeros((0, 4)), y_train=np.zeros(0)), "x_train"),
    (dict(algorithm="newton"), "algorithm"), (dict(singular="lstsq"), "singular"),
])
def test_bad_input(kw, match):
    spec, d = _setup("relu", 1)
    args = dict(x_train=d.x_train, y_train=d.y_train, x_test=d.x_test, times=[3], lr=0.1)
    args.update(kw)
    with pytest.raises(ParameterError, match=match):
        predict_training(spec, args.pop("x_train"), args.pop("y_train"), args.pop("x_test"), **args)


def test_solution_from_kernels_directly():
    """frozen_ntk_solution accepts any PSD kernels (e.g. measured ones)."""
    rng = np.random.default_rng(3)
    F = rng.normal(size=(7, 12))
    Th = F @ F.T / 12
    G = rng.normal(size=(7, 9))
    K = G @ G.T / 9
    y = rng.normal(size=(4, 1))
    p = frozen_ntk_solution(K, Th, 4, y, [math.inf], lr=0.1)
    np.testing.assert_allclose(p.mean[0], Th[4:, :4] @ np.linalg.solve(Th[:4, :4], y), atol=1e-10)
