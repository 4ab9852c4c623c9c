"""Infinite-width (frozen-NTK) prediction of what gradient descent learns (PDLT §6.1 / ch. 10).

Conventions (:mod:`deepeft.conventions`): summed loss L = ½ Σ_{i,α∈A} (z_{i;α} − y_{i;α})², update
Δθ_μ = −η Σ_ν λ_μν ∂L/∂θ_ν.  At infinite width the NTK is frozen at its mean Θ (= Θ^(L), ∝ δ_ij over
output units) and the outputs move linearly (Lee et al. 2019, arXiv 1902.06720, eq. 8–9; PDLT eq. 10.25):

    z_A(t+1) − y = (I − ηΘ̃)(z_A(t) − y)                    Θ̃ = Θ_AA  (training block)
    z_δ(t)       = z_δ(0) − Θ_δA g_t(Θ̃) (z_A(0) − y),       g_t(λ) = [1 − (1 − ηλ)^t]/λ

(gradient flow dθ/dτ = −λ∂L/∂θ: g_τ(λ) = (1 − e^{−λτ})/λ; fully trained: g_∞(λ) = 1/λ, which needs
0 < η < 2/λ_max(Θ̃) for GD).  The outputs at initialisation are Gaussian with covariance K (the NNGP
kernel K^(L)) and mean 0, independent across output units, so with P_t = Θ_DA g_t(Θ̃):

    mean  m_D(t)  = P_t y
    cov   Σ_D(t)  = K_DD − P_t K_AD − K_DA P_tᵀ + P_t K_AA P_tᵀ      (the same for every output unit)

g_t is evaluated in the eigenbasis of Θ̃, so no inverse is needed at finite t; for λ → 0,
g_t → ηt.  At t = ∞ the inverse is needed: an ill-conditioned Θ̃ (duplicate training inputs) is an
error naming its condition number unless ``singular='pinv'``: the Moore–Penrose pseudo-inverse,
eigenvalues below ``rcond``·λ_max dropped.  This is the exact t → ∞ limit, since a null vector v of
Θ̃ (a Gram matrix) has Θ_DA v = 0; the training residual then keeps its component along v.

Fully trained, the mean is kernel (ridge-less) regression with the NTK, m = Θ_DA Θ̃⁻¹ y, whereas the
exact Bayesian posterior of the infinite-width prior (NNGP, PDLT ch. 6) is kernel regression with K:
mean K_DA K̃⁻¹ y, covariance K_DD − K_DA K̃⁻¹ K_AD (:func:`nngp_posterior`).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..core.errors import ParameterError, check_int, check_nonnegative, check_positive
from ..core.jsonutil import to_jsonable
from ..core.spec import MLPSpec, validate_inputs

ALGORITHMS = ("gd", "flow")  # closed forms; 'sgd' is propagated step by step (frozen_ntk_sgd)
SINGULAR = ("error", "pinv")
#: default relative eigenvalue threshold below which the training NTK counts as singular
RCOND = 1e-10


class StabilityWarning(UserWarning):
    """η is above the GD stability bound 2/λ_max(Θ̃): the frozen-NTK dynamics diverge."""


# ----------------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------------
def validate_labels(y, n_samples: int, n_out: int, name: str = "labels") -> np.ndarray:
    """Labels as (N, n_L) float64; a 1-d array is accepted when n_L = 1."""
    try:
        a = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParameterError(name, type(y).__name__, f"an array of shape ({n_samples}, {n_out})") from None
    if a.ndim == 1 and n_out == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape != (n_samples, n_out):
        raise ParameterError(name, f"shape {a.shape}", f"shape ({n_samples}, {n_out}) (one row per input, one column "
                             f"per output unit; a 1-d array of length {n_samples} when output_width = 1)")
    if not np.all(np.isfinite(a)):
        bad = np.argwhere(~np.isfinite(a))[0]
        raise ParameterError(name, f"NaN/inf at row {bad[0]}", "finite values only")
    return a


def validate_training_set(spec: MLPSpec, x_train, y_train, x_test=None, y_test=None):
    """(x_train (N_A, n_0), y_train (N_A, n_L), x_test (N_D, n_0) or empty, y_test or None)."""
    if not isinstance(spec, MLPSpec):
        raise ParameterError("spec", type(spec).__name__, "an MLPSpec")
    try:
        n_train = len(x_train)
    except TypeError:
        n_train = None
    if n_train == 0:
        raise ParameterError("x_train", "empty", "at least one training input")
    xa = validate_inputs(x_train, spec, "x_train")
    ya = validate_labels(y_train, xa.shape[0], spec.output_width, "y_train")
    if x_test is None or (hasattr(x_test, "__len__") and len(x_test) == 0):
        xd = np.zeros((0, spec.input_dim))
    else:
        xd = validate_inputs(x_test, spec, "x_test")
    yd = None if y_test is None else validate_labels(y_test, xd.shape[0], spec.output_width, "y_test")
    return xa, ya, xd, yd


def check_times(times, algorithm: str) -> np.ndarray:
    """Record times as float64: GD steps (integers ≥ 0) or flow times τ ≥ 0; ``inf`` = fully trained."""
    t = np.atleast_1d(np.asarray(times, dtype=np.float64))
    if t.ndim != 1 or t.size == 0 or np.any(np.isnan(t)) or np.any(t < 0):
        raise ParameterError("times", times, "a non-empty list of times >= 0 (inf for fully trained)")
    if algorithm == "gd":
        fin = t[np.isfinite(t)]
        if np.any(fin != np.round(fin)):
            raise ParameterError("times", times, "integer step counts for algorithm='gd' (or inf)")
    return t


# ----------------------------------------------------------------------------------------------
# kernels on train ∪ test
# ----------------------------------------------------------------------------------------------
def frozen_kernels(spec: MLPSpec, x) -> tuple[np.ndarray, np.ndarray]:
    """Last-layer NNGP kernel K^(L) and frozen NTK Θ^(L) on the inputs x (N, n_0), float64.

    Identical inputs give identical rows: they are computed once and expanded (the Mehler series
    of :func:`~deepeft.theory.infinite_kernels` would need unboundedly many terms at ρ = 1)."""
    x = validate_inputs(x, spec)
    xu, inv = np.unique(x, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    if spec.residual is None:
        from .large_n import infinite_kernels
        K, Th = infinite_kernels(spec, xu)
    else:
        from .recursion import propagate
        rec = propagate(spec, xu, order="infinite")
        K, Th = rec.K[-1], rec.Theta[-1]
    return K[np.ix_(inv, inv)], Th[np.ix_(inv, inv)]


# ----------------------------------------------------------------------------------------------
# the closed-form solution
# ----------------------------------------------------------------------------------------------
def _g(lam: np.ndarray, t: float, lr: float | None, algorithm: str, keep: np.ndarray) -> np.ndarray:
    """g_t(λ) for every eigenvalue (see module doc); λ ≤ 0 (numerical noise) uses the λ → 0 limit."""
    lam = np.clip(lam, 0.0, None)
    pos = lam > 0
    out = np.empty_like(lam)
    if math.isinf(t):
        out[:] = np.where(keep & pos, 1.0 / np.where(pos, lam, 1.0), 0.0)
        return out
    if algorithm == "flow":
        out[pos] = -np.expm1(-lam[pos] * t) / lam[pos]
        out[~pos] = t
        return out
    el = lr * lam
    small = el < 1.0  # −expm1(t·log1p(−ηλ)) is accurate there; ηλ ≥ 1 needs the plain power
    out[pos & small] = -np.expm1(t * np.log1p(-el[pos & small])) / lam[pos & small]
    big = pos & ~small
    out[big] = (1.0 - np.power(1.0 - el[big], t)) / lam[big]
    out[~pos] = lr * t
    return out


def _eig_training_ntk(Th_AA: np.ndarray, singular: str, rcond: float, need_inverse: bool, what: str = "NTK"):
    lam, U = np.linalg.eigh(0.5 * (Th_AA + Th_AA.T))
    lmax = float(lam[-1])
    if lmax <= 0:
        raise ParameterError("training inputs", f"training {what} with largest eigenvalue {lmax:.3g}",
                             f"a training {what} with a positive eigenvalue (learning rates λ not all zero)")
    keep = lam > rcond * lmax
    cond = lmax / lam[0] if lam[0] > 0 else math.inf
    if need_inverse and not np.all(keep) and singular == "error":
        raise ParameterError("training inputs", f"training {what} Θ̃ with condition number {cond:.3g}",
                             f"a well-conditioned training {what} (condition number < 1/rcond = {1 / rcond:.3g})",
                             "duplicate or nearly parallel training inputs make it singular; pass singular='pinv' "
                             "for the Moore–Penrose pseudo-inverse (the exact t → ∞ limit of gradient descent)")
    return lam, U, keep, cond


@dataclass
class TrainedPrediction:
    """Frozen-NTK prediction at the record times ``times`` (GD steps or flow times; inf = trained).

    Shapes (T times, N_A training and N_D test inputs, n_L outputs): ``mean`` (T, N_D, n_L),
    ``cov`` (T, N_D, N_D) and ``var`` (T, N_D) are per output unit (the same for every unit);
    ``train_mean`` (T, N_A, n_L), ``train_var`` (T, N_A); ``loss`` (T,) the expected training loss
    E[½ Σ_{i,α} (z − y)²]; with test labels: ``bias2`` and ``variance`` (T,), the test MSE per
    test input and output unit averaged, E[(z − y)²] = bias2 + variance (``test_mse``)."""

    algorithm: str
    lr: float | None
    times: np.ndarray
    mean: np.ndarray
    cov: np.ndarray
    var: np.ndarray
    train_mean: np.ndarray
    train_var: np.ndarray
    loss: np.ndarray
    eigenvalues: np.ndarray
    condition_number: float
    lr_bound: float
    singular: str
    bias2: np.ndarray | None = None
    variance: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    @property
    def test_mse(self) -> np.ndarray | None:
        return None if self.bias2 is None else self.bias2 + self.variance

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("algorithm", "lr", "times", "mean", "var", "train_mean", "train_var",
                                          "loss", "eigenvalues", "condition_number", "lr_bound", "singular",
                                          "bias2", "variance", "meta")}
        d["test_mse"] = self.test_mse
        return to_jsonable(d)


def lr_bound(Th_AA: np.ndarray) -> float:
    """GD stability bound 2/λ_max(Θ̃) of the frozen-NTK dynamics."""
    return 2.0 / float(np.linalg.eigvalsh(0.5 * (Th_AA + Th_AA.T))[-1])


def frozen_ntk_solution(K: np.ndarray, Theta: np.ndarray, n_train: int, y_train, times, *, lr: float | None = None,
                        algorithm: str = "gd", y_test=None, singular: str = "error", rcond: float = RCOND,
                        full_cov: bool = True) -> TrainedPrediction:
    """The closed form of the module doc from kernels on [train; test] ((N_A + N_D)² each, train first).

    ``y_train`` (N_A, n_L).  ``times``: GD steps (``algorithm='gd'``, needs ``lr``) or flow times
    (``'flow'``); ``inf`` = fully trained.  ``full_cov=False`` skips the (T, N_D, N_D) covariance
    (``cov`` is then None) for long curves over many test inputs."""
    if algorithm not in ALGORITHMS:
        raise ParameterError("algorithm", algorithm, "'gd' (gradient descent with step lr) or 'flow' (gradient flow)")
    if singular not in SINGULAR:
        raise ParameterError("singular", singular, "'error' or 'pinv'")
    rcond = check_positive("rcond", rcond)
    K = np.asarray(K, dtype=np.float64)
    Th = np.asarray(Theta, dtype=np.float64)
    NA = check_int("n_train", n_train, 1)
    y = np.asarray(y_train, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    t = check_times(times, algorithm)
    if algorithm == "gd":
        if lr is None:
            raise ParameterError("lr", lr, "a learning rate > 0 for algorithm='gd'")
        lr = check_positive("lr", lr)
    else:
        lr = None
    A, D = slice(0, NA), slice(NA, K.shape[0])
    need_inv = bool(np.any(np.isinf(t)))
    lam, U, keep, cond = _eig_training_ntk(Th[A, A], singular, rcond, need_inv)
    bound = 2.0 / float(lam[-1])
    if algorithm == "gd" and lr >= bound and need_inv:
        raise ParameterError("lr", lr, f"< 2/λ_max(Θ̃) = {bound:.6g} for a fully trained (t = ∞) prediction",
                             "gradient descent on the frozen NTK diverges above this bound")
    n_out = y.shape[1]
    # eigenbasis quantities: a = Θ_DA U, b = Uᵀ K_AD, c = Uᵀ K_AA U, u = Uᵀ y
    a = Th[D, A] @ U
    b = U.T @ K[A, D]
    c = U.T @ K[A, A] @ U
    u = U.T @ y
    G = np.stack([_g(lam, float(ti), lr, algorithm, keep) for ti in t])  # (T, N_A)
    S = 1.0 - lam[None, :] * G   # training residual factor s_t(λ) = (1 − ηλ)^t (1 at dropped λ when t = ∞)
    if need_inv:
        S[np.isinf(t)] = np.where(keep, 0.0, 1.0)
    mean = np.einsum("dk,tk,ko->tdo", a, G, u)
    var = (np.diag(K[D, D])[None, :] - 2 * np.einsum("dk,tk,kd->td", a, G, b)
           + np.einsum("dk,tk,kl,tl,dl->td", a, G, c, G, a))
    cov = None
    if full_cov:
        aG = a[None] * G[:, None, :]  # (T, N_D, N_A) = P_t U
        cov = (K[D, D][None] - aG @ b[None] - np.swapaxes(aG @ b[None], 1, 2) + aG @ c[None] @ np.swapaxes(aG, 1, 2))
    train_mean = y[None] - np.einsum("ak,tk,ko->tao", U, S, u)
    train_var = np.einsum("ak,tk,kl,tl,al->ta", U, S, c, S, U)
    loss = 0.5 * (np.einsum("tk,ko->t", S**2, u**2) + n_out * np.einsum("tk,kk->t", S**2, c))
    out = TrainedPrediction(algorithm=algorithm, lr=lr, times=t, mean=mean, cov=cov, var=np.clip(var, 0, None),
                            train_mean=train_mean, train_var=np.clip(train_var, 0, None), loss=loss, eigenvalues=lam,
                            condition_number=cond, lr_bound=bound, singular=singular,
                            meta={"n_dropped_eigenvalues": int(np.sum(~keep)) if need_inv else 0})
    # the linear map of the dynamics on the test rows: z_D(t) = R_t z(0) + mean_D(t), R_t = [−P_t, I]
    ND = mean.shape[1]
    P = np.einsum("dk,tk,ak->tda", a, G, U)
    out.meta["R"] = np.concatenate([-P, np.broadcast_to(np.eye(ND), (len(t), ND, ND))], axis=2)
    if y_test is not None:
        yd = np.asarray(y_test, dtype=np.float64).reshape(mean.shape[1], n_out)
        out.bias2 = np.mean((mean - yd[None]) ** 2, axis=(1, 2))
        out.variance = np.mean(out.var, axis=1) if mean.shape[1] else np.zeros(len(t))
    return out


def sgd_schedule(n_train: int, batch_size: int, steps: int, seed: int) -> np.ndarray:
    """(steps, batch_size) minibatch indices of minibatch SGD: per epoch one random order of the
    training inputs (seeded; shared by all networks of an ensemble) cut into minibatches of
    ``batch_size``; an epoch's incomplete tail is dropped."""
    rng = np.random.default_rng([int(seed), 0x5D])
    per_epoch = n_train // batch_size
    n_ep = -(-steps // per_epoch)
    idx = np.stack([rng.permutation(n_train)[: per_epoch * batch_size].reshape(per_epoch, batch_size)
                    for _ in range(n_ep)])
    return idx.reshape(-1, batch_size)[:steps]


def frozen_ntk_sgd(K: np.ndarray, Theta: np.ndarray, n_train: int, y_train, times, batches, *, lr: float,
                   y_test=None) -> TrainedPrediction:
    """Frozen-NTK minibatch SGD with a given minibatch sequence ``batches`` (steps, B): the outputs on
    all inputs obey z(s+1) = z(s) − η Θ_{·B_s} (z_{B_s}(s) − y_{B_s}), a linear map, so mean and
    covariance are propagated exactly step by step (cost steps·N³, N = N_A + N_D)."""
    lr = check_positive("lr", lr)
    t = check_times(times, "gd")
    if np.any(np.isinf(t)) or (len(t) and t.max() > len(batches)):
        raise ParameterError("times", times, f"integer steps in [0, {len(batches)}] for minibatch SGD")
    K = np.asarray(K, dtype=np.float64)
    Th = np.asarray(Theta, dtype=np.float64)
    y = np.asarray(y_train, dtype=np.float64).reshape(n_train, -1)
    NA, N = n_train, K.shape[0]
    m = np.zeros((N, y.shape[1]))
    C = K.copy()
    want = {int(ti): i for i, ti in enumerate(t)}
    means, covs, Rs = [None] * len(t), [None] * len(t), [None] * len(t)
    R = np.eye(N)  # z(s) = R z(0) + m(s)
    for s in range(int(t.max()) + 1):
        if s in want:
            means[want[s]], covs[want[s]], Rs[want[s]] = m.copy(), C.copy(), R[NA:].copy()
        if s == int(t.max()):
            break
        B = batches[s]
        Tm = np.eye(N)
        Tm[:, B] -= lr * Th[:, B]
        m = Tm @ m + lr * Th[:, B] @ y[B]
        C = Tm @ C @ Tm.T
        R = Tm @ R
    means, covs = np.array(means), np.array(covs)
    lam = np.linalg.eigvalsh(Th[:NA, :NA])
    D = slice(NA, N)
    tv = np.einsum("taa->ta", covs[:, :NA, :NA])
    out = TrainedPrediction(algorithm="sgd", lr=lr, times=t, mean=means[:, D], cov=covs[:, D, D],
                            var=np.einsum("taa->ta", covs[:, D, D]), train_mean=means[:, :NA], train_var=tv,
                            loss=0.5 * (np.sum((means[:, :NA] - y[None]) ** 2, axis=(1, 2)) + y.shape[1] * tv.sum(1)),
                            eigenvalues=lam, condition_number=float(lam[-1] / lam[0]) if lam[0] > 0 else math.inf,
                            lr_bound=2.0 / float(lam[-1]), singular="error",
                            meta={"batch_size": batches.shape[1], "R": np.array(Rs)})
    if y_test is not None:
        yd = np.asarray(y_test, dtype=np.float64).reshape(N - NA, -1)
        out.bias2 = np.mean((out.mean - yd[None]) ** 2, axis=(1, 2))
        out.variance = np.mean(out.var, axis=1) if N > NA else np.zeros(len(t))
    return out


def predict_training(spec: MLPSpec, x_train, y_train, x_test=None, times=(math.inf,), *, lr: float | None = None,
                     algorithm: str = "gd", y_test=None, singular: str = "error", rcond: float = RCOND,
                     full_cov: bool = True, warn: bool = True, batch_size: int | None = None,
                     seed: int = 0) -> TrainedPrediction:
    """Infinite-width prediction of the ensemble of networks ``spec`` trained on (x_train, y_train)
    by full-batch GD with step ``lr``, gradient flow, or minibatch SGD (``algorithm='sgd'``, minibatches
    of ``batch_size`` from :func:`sgd_schedule` with ``seed``, as the trained-ensemble engine draws
    them) at the record ``times`` (see :func:`frozen_ntk_solution`, :func:`frozen_ntk_sgd`; the NTK's
    λ are the spec's ``lambda_W``/``lambda_b``).

    ``lr`` above the stability bound 2/λ_max(Θ̃) warns (:class:`StabilityWarning`) naming the bound,
    and is an error when ``times`` contains ∞ (divergence is certain)."""
    xa, ya, xd, yd = validate_training_set(spec, x_train, y_train, x_test, y_test)
    K, Th = frozen_kernels(spec, np.concatenate([xa, xd]))
    if algorithm in ("gd", "sgd") and lr is not None and warn:
        check_lr(lr, lr_bound(Th[: len(xa), : len(xa)]), stacklevel=3)
    if algorithm == "sgd":
        if batch_size is None:
            raise ParameterError("batch_size", None, f"1 … {len(xa)} for algorithm='sgd'")
        bs = check_int("batch_size", batch_size, 1)
        if bs > len(xa):
            raise ParameterError("batch_size", batch_size, f"1 … {len(xa)} (the number of training inputs)")
        tt = check_times(times, "gd")
        if np.any(np.isinf(tt)):
            raise ParameterError("times", times, "finite step counts for algorithm='sgd'")
        batches = sgd_schedule(len(xa), bs, max(int(tt.max()), 1), seed)
        out = frozen_ntk_sgd(K, Th, len(xa), ya, tt, batches, lr=lr, y_test=yd)
    else:
        out = frozen_ntk_solution(K, Th, len(xa), ya, times, lr=lr, algorithm=algorithm, y_test=yd,
                                  singular=singular, rcond=rcond, full_cov=full_cov)
    out.meta.update({"K": K, "Theta": Th, "n_train": len(xa)})
    return out


def check_lr(lr: float, bound: float, *, certain: bool = False, stacklevel: int = 2) -> float:
    """η > 0; η ≥ 2/λ_max(Θ̃) warns naming the bound, or raises when ``certain`` (divergence certain)."""
    lr = check_positive("lr", lr)
    if lr >= bound:
        msg = (f"lr={lr:g} is above the gradient-descent stability bound 2/λ_max(Θ̃) = {bound:.6g} of the "
               "infinite-width training NTK: the frozen-NTK dynamics diverge")
        if certain:
            raise ParameterError("lr", lr, f"< 2/λ_max(Θ̃) = {bound:.6g}", "divergence is certain")
        warnings.warn(msg, StabilityWarning, stacklevel=stacklevel)
    return lr


# ----------------------------------------------------------------------------------------------
# kernel regression and the Bayesian posterior
# ----------------------------------------------------------------------------------------------
def kernel_regression(K_AA, K_DA, y, *, ridge: float = 0.0, singular: str = "error", rcond: float = RCOND) -> np.ndarray:
    """Kernel (ridge) regression K_DA (K_AA + ridge·I)⁻¹ y, by eigendecomposition (see module doc
    for ``singular``).  With the NTK and ridge 0 it equals the fully trained frozen-NTK mean."""
    ridge = check_nonnegative("ridge", ridge)
    if singular not in SINGULAR:
        raise ParameterError("singular", singular, "'error' or 'pinv'")
    KA = np.asarray(K_AA, dtype=np.float64) + ridge * np.eye(len(K_AA))
    lam, U, keep, _ = _eig_training_ntk(KA, singular, rcond, True, what="kernel")
    inv = np.where(keep, 1.0 / np.where(keep, lam, 1.0), 0.0)
    return np.asarray(K_DA, dtype=np.float64) @ (U * inv) @ U.T @ np.asarray(y, dtype=np.float64)


@dataclass
class Posterior:
    """Exact Gaussian-process posterior of the infinite-width prior (per output unit):
    mean (N_D, n_L), cov (N_D, N_D), var (N_D,)."""

    mean: np.ndarray
    cov: np.ndarray
    var: np.ndarray
    noise: float


def nngp_posterior(spec: MLPSpec, x_train, y_train, x_test, *, noise: float = 0.0, singular: str = "error",
                   rcond: float = RCOND) -> Posterior:
    """Bayesian posterior of the infinite-width network prior given (x_train, y_train) observed
    with Gaussian noise of variance ``noise`` (0: exact interpolation; PDLT ch. 6, eq. 6.64–6.65):
    mean K_DA (K̃ + noise·I)⁻¹ y, covariance K_DD − K_DA (K̃ + noise·I)⁻¹ K_AD."""
    xa, ya, xd, _ = validate_training_set(spec, x_train, y_train, x_test)
    K, _ = frozen_kernels(spec, np.concatenate([xa, xd]))
    NA = len(xa)
    A, D = slice(0, NA), slice(NA, None)
    noise = check_nonnegative("noise", noise)
    both = kernel_regression(K[A, A], K[D, A], np.concatenate([ya, K[A, D]], axis=1), ridge=noise,
                             singular=singular, rcond=rcond)
    mean, KDAinvKAD = both[:, : ya.shape[1]], both[:, ya.shape[1]:]
    cov = K[D, D] - KDAinvKAD
    return Posterior(mean=mean, cov=cov, var=np.clip(np.diag(cov), 0, None), noise=noise)


def lr_bound_for(spec: MLPSpec, x_train) -> float:
    """2/λ_max of the infinite-width training NTK Θ̃ of ``spec`` on x_train."""
    _, Th = frozen_kernels(spec, validate_inputs(x_train, spec, "x_train"))
    return lr_bound(Th)


__all__ = ["predict_training", "frozen_ntk_solution", "frozen_kernels", "kernel_regression", "nngp_posterior",
           "TrainedPrediction", "Posterior", "StabilityWarning", "lr_bound", "lr_bound_for", "check_lr",
           "validate_training_set", "validate_labels", "sgd_schedule", "frozen_ntk_sgd"]
