"""Trained ensembles side by side with the infinite-width (frozen-NTK) prediction.

* :func:`compare_training` / :func:`train_check`: per test input the predicted mean and variance
  over initialisations vs the measured ensemble (mean ± SE, variance ± SE, z-scores) and the
  training-loss curve vs the predicted curve.
* :func:`width_scan`: where the infinite-width prediction stops holding.  The deviation of the
  ensemble mean from the frozen-NTK mean, d_n = E[z(t)] − m_∞(t), is O(1/n) (PDLT ch. ∞), so
  n·d_n should tend to a constant; the exponent p of d_n ∝ n^p is fitted (common p, one amplitude
  per test output) and flagged when it is not −1 within 3 standard errors, or when its standard
  error exceeds 0.3 (not resolved: too few networks).  d_n is estimated
  with a control variate that is exact in expectation: every network's own frozen-NTK
  linearisation z^lin(t) = R_t z(0) + m_∞(t) (R_t the linear map of the frozen dynamics, built
  from its own initial outputs) has mean m_∞(t), so mean_m[z_m(t) − R_t z_m(0)] estimates E[z(t)]
  without bias and with a variance O(1/n) instead of O(1).
* :func:`lr_equivalence`: the learning-rate equivalence principle (PDLT ch. 9, reference §5.3):
  ensembles at several depths trained with (a) the per-layer rates prescribed for the
  activation's universality class and (b) one global rate, same η at every depth.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..core.errors import ParameterError, check_positive
from ..core.jsonutil import to_jsonable
from ..core.spec import MLPSpec
from .training import TrainedEnsemble, sample_stats, train_ensemble

#: a fitted exponent with a larger standard error counts as not resolved (flagged)
MAX_EXPONENT_ERROR = 0.3


@dataclass
class TrainingComparison:
    """Prediction vs measurement at the last record time (``rows``, one per test input and output
    unit) and the loss curve at every record time (``loss``)."""

    rows: list
    loss: dict
    z_threshold: float
    algorithm: str
    times: np.ndarray
    n_diverged: int
    meta: dict = field(default_factory=dict)

    @property
    def max_abs_z(self) -> float:
        zs = [abs(r[k]) for r in self.rows for k in ("z_mean", "z_var") if np.isfinite(r[k])]
        return max(zs) if zs else float("nan")

    @property
    def flagged(self) -> list:
        return [r for r in self.rows if abs(r["z_mean"]) > self.z_threshold or abs(r["z_var"]) > self.z_threshold]

    def table(self) -> str:
        t = self.times[-1]
        lines = [f"trained ensemble vs infinite-width (frozen-NTK) prediction, {self.algorithm} at t = {t:g}"
                 + (f"  ({self.n_diverged} diverged networks excluded)" if self.n_diverged else ""),
                 f"{'input':>5} {'out':>3} | {'mean theory':>11} {'measured':>21} {'z':>6} | "
                 f"{'var theory':>10} {'measured':>21} {'z':>6}"]
        for r in self.rows:
            flag = "  <-- |z| > %g" % self.z_threshold if r in self.flagged else ""
            lines.append(f"{r['input']:>5} {r['output']:>3} | {r['mean_theory']:>11.5f} "
                         f"{r['mean']:>10.5f} ± {r['se_mean']:<8.5f} {r['z_mean']:>6.2f} | {r['var_theory']:>10.5f} "
                         f"{r['var']:>10.5f} ± {r['se_var']:<8.5f} {r['z_var']:>6.2f}{flag}")
        lines.append("training loss ½Σ(z−y)²: step/time, theory, measured mean ± SE")
        L = self.loss
        for i in _thin(len(L["times"]), 8):
            lines.append(f"  {L['times'][i]:>10g}  {L['theory'][i]:>12.5g}  {L['mean'][i]:>12.5g} ± {L['se'][i]:.2g}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return to_jsonable({"rows": self.rows, "loss": self.loss, "z_threshold": self.z_threshold,
                            "algorithm": self.algorithm, "times": self.times, "n_diverged": self.n_diverged,
                            "max_abs_z": self.max_abs_z, "n_flagged": len(self.flagged), "meta": self.meta})


def _thin(n: int, k: int) -> list[int]:
    return sorted(set(np.linspace(0, n - 1, min(n, k)).round().astype(int).tolist()))


def prediction_for(trained: TrainedEnsemble, **kw):
    """The frozen-NTK prediction at the ensemble's own record times, algorithm and rate."""
    from ..theory.training import predict_training
    alg = trained.algorithm
    if alg == "adam":
        raise ParameterError("algorithm", alg, "'gd', 'flow' or 'sgd' (the frozen-NTK theory describes "
                             "gradient descent with the λ rates, not Adam)")
    return predict_training(trained.spec, trained.x_train, trained.y_train, trained.x_test, trained.times,
                            lr=None if alg == "flow" else trained.lr, algorithm=alg, warn=False,
                            batch_size=trained.meta.get("batch_size"), seed=trained.meta.get("seed", 0), **kw)


def compare_training(pred, trained: TrainedEnsemble, z_threshold: float = 4.0) -> TrainingComparison:
    """Rows per test input and output unit at the last record time, and the loss curve."""
    z_threshold = check_positive("z_threshold", z_threshold)
    if len(pred.times) != len(trained.times) or not np.allclose(pred.times, trained.times):
        raise ParameterError("pred", "prediction at other times", "a prediction at the ensemble's record times")
    st = trained.stats("test", -1)
    cv = control_variate_mean(pred, trained, -1)
    rows = []
    for d in range(st["mean"].shape[0]):
        for i in range(st["mean"].shape[1]):
            m, v = float(pred.mean[-1, d, i]), float(pred.var[-1, d])
            row = {"input": d, "output": i, "mean_theory": m, "var_theory": v,
                   "mean": float(st["mean"][d, i]), "se_mean": float(st["se_mean"][d, i]),
                   "var": float(st["var"][d, i]), "se_var": float(st["se_var"][d, i]),
                   "mean_cv": float(cv["mean"][d, i]), "se_mean_cv": float(cv["se"][d, i])}
            row["z_mean"] = _z(row["mean"] - m, row["se_mean"])
            row["z_var"] = _z(row["var"] - v, row["se_var"])
            row["z_mean_cv"] = _z(row["mean_cv"] - m, row["se_mean_cv"])
            rows.append(row)
    alive = trained.alive
    L = trained.loss[alive]
    loss = {"times": trained.times, "theory": pred.loss, "mean": L.mean(0),
            "se": L.std(0, ddof=1) / math.sqrt(max(1, L.shape[0]))}
    meta = {"M": int(alive.sum()), "lr": trained.lr, "lr_bound": trained.meta.get("lr_bound")}
    if pred.bias2 is not None:
        meta["test_mse_theory"] = float(pred.test_mse[-1])
    return TrainingComparison(rows=rows, loss=loss, z_threshold=z_threshold, algorithm=trained.algorithm,
                              times=trained.times, n_diverged=len(trained.diverged), meta=meta)


def _z(diff: float, se: float) -> float:
    return diff / se if se > 0 else (0.0 if diff == 0 else math.inf)


def linear_map(pred, j: int) -> np.ndarray:
    """R_t (N_D, N_A + N_D): the test outputs of the frozen dynamics are R_t z(0) + m_∞(t)."""
    return pred.meta["R"][j]


def control_variate_mean(pred, trained: TrainedEnsemble, j: int = -1) -> dict:
    """mean_m[z_m(t) − R_t z_m(0)] and its SE (see module doc); needs record time 0."""
    if trained.times[0] != 0:
        raise ParameterError("record", trained.times.tolist(), "record times that include 0 (the initial outputs)")
    R = linear_map(pred, j)
    alive = trained.alive
    z0 = np.concatenate([trained.train_out[alive, 0], trained.test_out[alive, 0]], axis=1)  # (M, N, n_L)
    d = trained.test_out[alive, j] - np.einsum("dn,mno->mdo", R, z0)
    s = sample_stats(d)
    return {"mean": s["mean"], "se": s["se_mean"], "samples": d}


def train_check(spec: MLPSpec, x_train, y_train, x_test, y_test=None, *, z_threshold: float = 4.0, **train_kw):
    """Train an ensemble (:func:`~deepeft.ensemble.training.train_ensemble` keywords) and compare it
    with the frozen-NTK prediction.  Returns (TrainingComparison, TrainedEnsemble, TrainedPrediction)."""
    trained = train_ensemble(spec, x_train, y_train, x_test, **train_kw)
    pred = prediction_for(trained, y_test=y_test)
    return compare_training(pred, trained, z_threshold), trained, pred


# ----------------------------------------------------------------------------------------------
# width scan: where the infinite-width prediction stops holding
# ----------------------------------------------------------------------------------------------
def with_width(spec: MLPSpec, n: int) -> MLPSpec:
    """``spec`` with every hidden width n (:meth:`MLPSpec.replace` re-derives λ the user did not give)."""
    return spec.replace(widths=(int(n),) * (spec.depth - 1))


def fit_exponent(widths, dev, se) -> dict:
    """Least-squares fit of dev[k] ≈ c_k (n/n_0)^p over widths (common p, amplitudes c_k per
    component), weighted by 1/se.  Returns p, its standard error and χ²/dof."""
    from scipy.optimize import least_squares
    n = np.asarray(widths, dtype=float)
    D = np.asarray(dev, dtype=float).reshape(len(n), -1)
    S = np.asarray(se, dtype=float).reshape(len(n), -1)
    S = np.where(S > 0, S, np.min(S[S > 0]) if np.any(S > 0) else 1.0)
    x = n / n[0]
    K = D.shape[1]

    def resid(th):
        p, c = th[0], th[1:]
        return ((c[None, :] * x[:, None] ** p - D) / S).ravel()

    c0 = D[0]
    sol = least_squares(resid, np.concatenate([[-1.0], c0]))
    J = sol.jac
    dof = max(1, D.size - (K + 1))
    chi2 = float(np.sum(sol.fun**2))
    try:
        cov = np.linalg.inv(J.T @ J) * max(1.0, chi2 / dof)
        err = float(math.sqrt(max(cov[0, 0], 0)))
    except np.linalg.LinAlgError:
        err = math.inf
    return {"p": float(sol.x[0]), "p_err": err, "chi2_dof": chi2 / dof, "amplitudes": sol.x[1:]}


def width_scan(spec: MLPSpec, x_train, y_train, x_test, widths, *, ensemble=256, ntk: bool = True,
               seeds=None, **train_kw) -> dict:
    """Train ensembles of ``spec`` at hidden ``widths`` and measure, per width: the control-variate
    deviation d_n = Ê[z(t)] − m_∞(t) at the last record time (± SE), n·d_n, the NTK change
    ‖Θ̂(t) − Θ̂(0)‖/‖Θ̂(0)‖ (Frobenius, on train+test; RMS over networks, whose expected slope is
    −1/2, and of the ensemble-mean change ‖E[ΔΘ]‖/‖E[Θ]‖, slope −1), the fitted exponents, and
    ``flag`` when the fitted p of d_n is not −1 within 3 standard errors or is not resolved (standard
    error > ``MAX_EXPONENT_ERROR``)."""
    widths = sorted(int(w) for w in widths)
    if len(widths) < 2 or widths[0] < 1:
        raise ParameterError("widths", widths, "at least two positive widths")
    if spec.output_width != 1:
        ntk = False
    res = {"widths": widths, "dev": [], "se": [], "n_dev": [], "dtheta_rms": [], "dtheta_mean": [], "M": []}
    for k, n in enumerate(widths):
        sp = with_width(spec, n)
        tr = train_ensemble(sp, x_train, y_train, x_test, ensemble=ensemble, ntk=ntk,
                            seed=(seeds[k] if seeds is not None else 1000 + k), **train_kw)
        pred = prediction_for(tr)
        cv = control_variate_mean(pred, tr, -1)
        dev = cv["mean"] - pred.mean[-1]
        res["dev"].append(dev)
        res["se"].append(cv["se"])
        res["n_dev"].append(n * dev)
        res["M"].append(int(tr.alive.sum()))
        if ntk:
            H = tr.ntk[tr.alive]
            dH = H[:, -1] - H[:, 0]
            rel = np.linalg.norm(dH, axis=(1, 2)) / np.linalg.norm(H[:, 0], axis=(1, 2))
            res["dtheta_rms"].append(float(np.sqrt(np.mean(rel**2))))
            res["dtheta_mean"].append(float(np.linalg.norm(dH.mean(0)) / np.linalg.norm(H[:, 0].mean(0))))
    res["fit"] = fit_exponent(widths, np.array(res["dev"]), np.array(res["se"]))
    if ntk:
        lw = np.log(widths)
        res["dtheta_rms_slope"] = float(np.polyfit(lw, np.log(res["dtheta_rms"]), 1)[0])
        res["dtheta_mean_slope"] = float(np.polyfit(lw, np.log(res["dtheta_mean"]), 1)[0])
    f = res["fit"]
    resolved = math.isfinite(f["p_err"]) and f["p_err"] <= MAX_EXPONENT_ERROR
    res["resolved"] = resolved
    res["flag"] = bool(not resolved or abs(f["p"] + 1) > 3 * f["p_err"])
    head = f"deviation from the infinite-width mean ∝ n^{f['p']:.2f} ± {f['p_err']:.2f}: "
    if not resolved:
        res["verdict"] = head + ("NOT RESOLVED — the ensembles are too small to measure the deviation "
                                 f"(exponent error > {MAX_EXPONENT_ERROR}); use more networks or wider widths")
    elif res["flag"]:
        res["verdict"] = head + "NOT the 1/n of the effective theory — the infinite-width prediction does not hold here"
    else:
        res["verdict"] = head + "consistent with 1/n (n·(m̂ − m_∞) tends to a constant)"
    return to_jsonable(res)


# ----------------------------------------------------------------------------------------------
# the learning-rate equivalence principle
# ----------------------------------------------------------------------------------------------
def lr_equivalence(activation, depths, width: int, x_train, y_train, x_test, y_test, *, lr_fraction: float = 0.5,
                   steps: int = 200, ensemble: int = 128, seed: int = 0, lambda_b: float = 1.0,
                   lambda_W: float = 1.0, **train_kw) -> dict:
    """Train critical ensembles at each depth with (a) ``'prescribed'`` per-layer rates
    (:func:`deepeft.theory.equivalence_learning_rates`) and (b) ``'global'`` λ_b^(l) = λ_b,
    λ_W^(l) = λ_W at every layer.  Each scheme uses one η for all depths: ``lr_fraction`` × the GD
    bound 2/λ_max(Θ̃) of its shallowest network (so the shallowest depth is equally well tuned in
    both).  Reports per scheme and depth: the measured loss curve, test MSE (mean ± SE) and its
    spread over instantiations (std of the per-network test MSE), the infinite-width Θ on the
    training set (trace/N_A) and the predicted loss curve."""
    from ..theory import critical_spec, equivalence_learning_rates
    from ..theory.training import StabilityWarning, frozen_kernels, lr_bound_for, predict_training
    depths = sorted(int(L) for L in depths)
    if len(depths) < 2 or depths[0] < 2:
        raise ParameterError("depths", depths, "at least two depths >= 2")
    lr_fraction = check_positive("lr_fraction", lr_fraction)
    n0 = np.asarray(x_train).shape[1]
    n_out = np.asarray(y_train).reshape(len(x_train), -1).shape[1]
    out = {"depths": depths, "width": width, "steps": steps, "schemes": {}}
    for scheme in ("prescribed", "global"):
        specs = {}
        for L in depths:
            if scheme == "prescribed":
                lb, lw = equivalence_learning_rates(activation, L, lambda_b, lambda_W)
            else:
                lb, lw = np.full(L, lambda_b), np.full(L, lambda_W)
            specs[L] = critical_spec(activation, L, width, n0, output_width=n_out, parameterization="standard",
                                     lambda_b=tuple(lb), lambda_W=tuple(lw))
        eta = lr_fraction * lr_bound_for(specs[depths[0]], x_train)
        rows = []
        for L in depths:
            sp = specs[L]
            bound = lr_bound_for(sp, x_train)
            with warnings.catch_warnings():  # η above a deep network's bound is part of the experiment
                warnings.simplefilter("ignore", StabilityWarning)
                tr = train_ensemble(sp, x_train, y_train, x_test, ensemble=ensemble, lr=eta, steps=steps,
                                    seed=seed + L, lr_error_factor=math.inf, **train_kw)
            alive = tr.alive
            mse = np.mean((tr.test_out[alive, -1] - np.asarray(y_test).reshape(1, len(x_test), -1)) ** 2, axis=(1, 2))
            pr = predict_training(sp, x_train, y_train, x_test, tr.times, lr=eta, warn=False) if eta < bound else None
            Th = frozen_kernels(sp, x_train)[1]
            rows.append({"depth": L, "lr": eta, "lr_bound": bound, "lr_over_bound": eta / bound,
                         "theta_train": float(np.trace(Th[:len(x_train), :len(x_train)]) / len(x_train)) if Th is not None else None,
                         "times": tr.times, "loss_mean": np.nanmean(tr.loss[alive], 0) if alive.any() else None,
                         "loss_theory": pr.loss if pr is not None else None,
                         "test_mse": float(mse.mean()) if len(mse) else None,
                         "test_mse_se": float(mse.std(ddof=1) / math.sqrt(len(mse))) if len(mse) > 1 else None,
                         "test_mse_spread": float(mse.std(ddof=1)) if len(mse) > 1 else None,
                         "n_diverged": len(tr.diverged), "M": tr.M,
                         "lambda_b": list(sp.lambda_b), "lambda_W": list(sp.lambda_W)})
        final = [r["loss_mean"][-1] for r in rows if r["loss_mean"] is not None]
        out["schemes"][scheme] = {"lr": eta, "rows": rows,
                                  "final_loss_ratio_deep_to_shallow": (final[-1] / final[0]) if len(final) == len(rows) and final[0] > 0 else None}
    return to_jsonable(out)
