"""Problem 1 (partial) — the LoRA model W_out·W_in ≈ M: free energy and λ(n) vs the reduced-rank SLT value.

Model (whitened inputs, Gaussian NLL, noise-free teacher; the conventions of ``deepeft.bayes.dln_gibbs``):
W_in (H × d_in), W_out (d_out × H), prior N(0, 1/γ) on every entry, t = nβ (the sample size at β = 1),

    K(w) = ½ ‖W_out W_in − M‖²_F,      Z(t) = E_prior[exp(−t K)],      F(t) = −log Z(t).

Exact identities used (thermodynamic integration in t, slt.md §4):

    dF/dt = E_t[K],      F(t) = ∫_0^t E_s[K] ds,      λ(t) := dF/d log t − t K_min = t (E_t[K] − K_min),

with K_min = ½ Σ_{i > H} s_i² (Eckart–Young: the best rank-H fit) — so λ(t) is measured directly,
temperature by temperature, with no quadrature, and F − t K_min by integrating λ(t) over log t.
E_t[K] comes from deepeft's exact blocked Gibbs sampler (``sample(..., sampler='gibbs')``: every
factor redrawn from its exact Gaussian conditional) on a real two-layer ``nn.Sequential``: a Monte-Carlo
estimate with standard errors, not a closed form.  (A closed form by reduction to the singular values
does not exist for H > 1: integrating W_out out leaves an integral of exp(tr(D VᵀMᵀMV)) over the real
Stiefel manifold of W_in's right singular vectors, which does not factorise over singular values.  It
does factorise for *variational* Bayes, Nakajima & Sugiyama 2011, JMLR 12.)

SLT predictions compared (Aoyagi & Watanabe 2005, ``deepeft.bayes.rrr_rlct``):
  * asymptotic: λ_∞ = RLCT at the true rank r = min(H, rank M) — F − tK_min ≈ λ_∞ log t;
  * reduced rank: singular values with t s_i² < 1 are treated as zero, r(t) = min(H, #{i: t s_i² ≥ 1}),
    λ_SLT(t) = RLCT(d_in, H, d_out, r(t)).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..core.errors import ParameterError, check_int, check_positive
from ._runner import Part, Problem, savefig, start_summary


def check_spectrum(spectrum) -> np.ndarray:
    s = np.asarray(spectrum, dtype=float).reshape(-1)
    if s.size == 0 or not np.all(np.isfinite(s)) or np.any(s < 0):
        raise ParameterError("spectrum", "values with a negative or non-finite entry" if s.size else "empty",
                             "finite singular values >= 0")
    return np.sort(s)[::-1]


def power_law_spectrum(k: int, alpha: float) -> np.ndarray:
    """s_i = i^(−α), i = 1 … k."""
    k = check_int("k", k, 1)
    a = check_positive("alpha", alpha)
    return np.arange(1, k + 1, dtype=float) ** (-a)


def teacher(d_in: int, d_out: int, spectrum, seed: int = 0) -> np.ndarray:
    """M = U diag(s) Vᵀ with Haar-random U, V (d_out × d_in, rank ≤ len(spectrum) ≤ min(d_in, d_out))."""
    d_in = check_int("d_in", d_in, 1)
    d_out = check_int("d_out", d_out, 1)
    s = check_spectrum(spectrum)
    if s.size > min(d_in, d_out):
        raise ParameterError("spectrum", f"{s.size} singular values", f"at most min(d_in, d_out) = {min(d_in, d_out)}")
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((d_out, d_out)))
    V, _ = np.linalg.qr(rng.standard_normal((d_in, d_in)))
    return (U[:, :s.size] * s) @ V[:, :s.size].T


def _check_shape(d_in, H, d_out):
    d_in, H, d_out = check_int("d_in", d_in, 1), check_int("H", H, 1), check_int("d_out", d_out, 1)
    if H > min(d_in, d_out):
        raise ParameterError("H", H, f"a rank <= min(d_in, d_out) = {min(d_in, d_out)} (the adapter's rank)")
    return d_in, H, d_out


def lora_model_and_data(M: np.ndarray, H: int, copies: int = 1, seed: int = 0):
    """A bias-free ``nn.Sequential(Linear(d_in, H), Linear(H, d_out))`` and whitened data x = √d_in·I (stacked
    ``copies`` times: n = copies·d_in, Σ = xᵀx/n = I), y = x Mᵀ, so that n L_n = n K with the 'gaussian_nll' loss."""
    import torch

    M = np.asarray(M, dtype=float)
    d_out, d_in = M.shape
    _check_shape(d_in, H, d_out)
    k = check_int("copies", copies, 1)
    g = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(d_in, H, bias=False), torch.nn.Linear(H, d_out, bias=False)).double()
    with torch.no_grad():
        for m in model:
            m.weight.copy_(0.1 * torch.randn(m.weight.shape, generator=g, dtype=torch.float64))
    x = math.sqrt(d_in) * torch.eye(d_in, dtype=torch.float64).repeat(k, 1)
    y = x @ torch.as_tensor(M).T
    return model, (x, y)


def gibbs_energy(M: np.ndarray, H: int, ts, *, gamma: float = 1.0, chains: int = 4, sweeps: int = 600,
                 seed: int = 0) -> dict:
    """E_t[K] ± SE at every t (one vectorised Gibbs run, ``chains`` chains per temperature), prior N(0, 1/γ)."""
    from ..bayes import mcse_mean, sample

    ts = np.asarray(ts, dtype=float)
    for t in ts:
        check_positive("t", t)
    check_positive("gamma", gamma)
    C = check_int("chains", chains, 2)
    model, data = lora_model_and_data(M, H, 1, seed)
    res = sample(model, data, "gaussian_nll", sampler="gibbs", nbeta=[float(t) for t in ts for _ in range(C)],
                 localization=gamma, center="zero", init="center", num_chains=C * ts.size, num_draws=sweeps,
                 seed=seed)
    tr = res.loss_trace.reshape(ts.size, C, -1)
    return {"t": ts, "EK": tr.mean((1, 2)), "EK_se": np.array([mcse_mean(tr[i]) for i in range(ts.size)])}


def prior_energy(M: np.ndarray, H: int, gamma: float) -> float:
    """E_prior[K] = ½(‖M‖² + d_in·H·d_out/γ²) (E‖W_out W_in‖² = d_out·H·d_in/γ², the cross term vanishes)."""
    M = np.asarray(M, dtype=float)
    d_out, d_in = M.shape
    return 0.5 * (float(np.sum(M * M)) + d_in * H * d_out / gamma ** 2)


def free_energy_from_energy(ts: np.ndarray, EK: np.ndarray, EK_se: np.ndarray, EK0: float,
                            K_min: float = 0.0) -> dict:
    """F(t_last) = ∫_0^{t_last} E_s[K] ds and the running F(t_j) on a log-uniform grid t_0 … t_last.

    [0, t_0]: trapezoid in s (E_0[K] exact, :func:`prior_energy`); above: ∫ s E_s[K] d log s, running
    values by the trapezoid rule, the end value by Simpson's rule (odd number of points).  ``se``: the
    Monte-Carlo error propagated through the Simpson weights (independent temperatures); ``quadrature_error``:
    |I_h − I_2h|/15 from the same rule on every other point (Richardson).  ``K_min``: t·K_min is integrated
    exactly and only E_s[K] − K_min (whose s-weighted integrand tends to the constant λ) by quadrature —
    on a coarse log grid the trapezoid/Simpson error of s·K_min would otherwise dominate at large t."""
    ts = np.asarray(ts, dtype=float)
    if ts.size < 5 or ts.size % 2 == 0 or not np.allclose(np.diff(np.log(ts)), math.log(ts[1] / ts[0]), rtol=1e-9):
        raise ParameterError("ts", f"{ts.size} values", "an odd number >= 5 of log-uniformly spaced t")
    EK = np.asarray(EK, dtype=float) - K_min
    EK0 = EK0 - K_min
    g = ts * EK
    h = math.log(ts[1] / ts[0])

    def simpson(m, hh):
        c = np.ones(m)
        c[1:-1:2], c[2:-1:2] = 4.0, 2.0
        return hh / 3.0 * c

    head = 0.5 * ts[0] * EK0
    w = simpson(ts.size, h) * ts      # weights on E[t_j]
    w[0] += 0.5 * ts[0]               # the [0, t_0] trapezoid's share of E[t_0]
    F_end = head + float(w @ EK)
    se = float(np.sqrt(np.sum((w * EK_se) ** 2)))
    wc = simpson((ts.size + 1) // 2, 2 * h) * ts[::2]
    wc[0] += 0.5 * ts[0]
    coarse = head + float(wc @ EK[::2])
    running = head + 0.5 * ts[0] * EK[0] + np.concatenate([[0.0], np.cumsum(0.5 * h * (g[1:] + g[:-1]))])
    return {"F": F_end + ts[-1] * K_min, "se": se, "quadrature_error": abs(F_end - coarse) / 15.0,
            "F_running": running + ts * K_min}


def slt_predictions(d_in: int, H: int, d_out: int, spectrum, ts) -> dict:
    """λ_∞ (true rank) and the reduced-rank λ_SLT(t) (singular values with t s² < 1 set to zero)."""
    from ..bayes import rrr_rlct

    d_in, H, d_out = _check_shape(d_in, H, d_out)
    s = check_spectrum(spectrum)
    r_true = min(H, int(np.sum(s > 0)))
    lam_inf = float(rrr_rlct(d_in, H, d_out, r_true)[0])
    rt = np.array([min(H, int(np.sum(t * s ** 2 >= 1.0))) for t in np.asarray(ts, dtype=float)])
    lam_t = np.array([float(rrr_rlct(d_in, H, d_out, int(r))[0]) for r in rt])
    return {"lambda_inf": lam_inf, "rank_t": rt, "lambda_t": lam_t, "K_min": 0.5 * float(np.sum(s[H:] ** 2))}


# ----------------------------------------------------------------------------- the problem
def _part_curve(cfg: dict) -> dict:
    s = power_law_spectrum(cfg["k"], cfg["alpha"])
    M = teacher(cfg["d_in"], cfg["d_out"], s, seed=cfg["seed"])
    ts = np.geomspace(cfg["t_min"], cfg["t_max"], cfg["points"])
    g = gibbs_energy(M, cfg["H"], ts, gamma=cfg["gamma"], chains=cfg["chains"], sweeps=cfg["sweeps"], seed=cfg["seed"])
    pred = slt_predictions(cfg["d_in"], cfg["H"], cfg["d_out"], s, ts)
    fe = free_energy_from_energy(ts, g["EK"], g["EK_se"], prior_energy(M, cfg["H"], cfg["gamma"]), pred["K_min"])
    return {"t": ts, "EK": g["EK"], "EK_se": g["EK_se"], "F": fe["F_running"], "K_min": np.array(pred["K_min"]),
            "lambda_inf": np.array(pred["lambda_inf"]), "lambda_t": pred["lambda_t"], "rank_t": pred["rank_t"]}


def _part_ti_check(cfg: dict) -> dict:
    """deepeft's thermodynamic_integration (MALA chains, its own β grid and prior Monte Carlo) on a real
    network at t = n = copies·d_in, against the Gibbs-energy integral at the same t."""
    from ..bayes import thermodynamic_integration

    s = power_law_spectrum(cfg["k"], cfg["alpha"])
    M = teacher(cfg["d_in"], cfg["d_out"], s, seed=cfg["seed"])
    rows = []
    for c in cfg["copies"]:
        model, data = lora_model_and_data(M, cfg["H"], c, cfg["seed"])
        t = float(c * cfg["d_in"])
        ti = thermodynamic_integration(model, data, "gaussian_nll", prior_precision=cfg["gamma"],
                                       n_betas=cfg["n_betas"], chains_per_temperature=cfg["chains"], sampler="mala",
                                       num_draws=cfg["draws"], num_burnin_steps=cfg["burnin"], seed=cfg["seed"])
        ts = np.geomspace(t * 1e-4, t, cfg["gibbs_points"])
        g = gibbs_energy(M, cfg["H"], ts, gamma=cfg["gamma"], chains=4, sweeps=cfg["gibbs_sweeps"], seed=cfg["seed"] + c)
        fe = free_energy_from_energy(ts, g["EK"], g["EK_se"], prior_energy(M, cfg["H"], cfg["gamma"]),
                                     0.5 * float(np.sum(s[cfg["H"]:] ** 2)))
        rows.append([t, ti.value, ti.se, ti.quadrature_error, fe["F"], fe["se"], fe["quadrature_error"]])
    return {"table": np.array(rows)}


def parts(quick: bool) -> list[Part]:
    base = {"d_in": 6, "d_out": 6, "H": 2, "k": 6, "gamma": 1.0, "seed": 0} if quick else \
        {"d_in": 12, "d_out": 12, "H": 4, "k": 12, "gamma": 1.0, "seed": 0}
    out = []
    for a in ([0.5] if quick else [0.3, 0.4, 0.5]):
        out.append(Part(f"curve_alpha{a:g}", {**base, "alpha": a, "t_min": 1e-2, "t_max": 1e3 if quick else 1e6,
                                               "points": 11 if quick else 31, "chains": 4,
                                               "sweeps": 150 if quick else 400}, _part_curve))
    out.append(Part("ti_check", {**base, "alpha": 0.5, "copies": [1] if quick else [1, 4, 16], "n_betas": 9 if quick else 17,
                                 "chains": 2 if quick else 4, "draws": 200 if quick else 1000,
                                 "burnin": 200 if quick else 1000, "gibbs_points": 11 if quick else 21,
                                 "gibbs_sweeps": 150 if quick else 400}, _part_ti_check))
    return out


def summarize(results: dict, folder: Path, quick: bool) -> dict:
    plt, figs, head, findings = start_summary()
    curves = sorted((k, v) for k, v in results.items() if k.startswith("curve_"))
    if curves:
        fig, ax = plt.subplots(1, 2, figsize=(11, 4))
        for i, (k, v) in enumerate(curves):
            t, lam = v["t"], v["t"] * (v["EK"] - v["K_min"])
            ax[0].errorbar(t, lam, 2 * v["t"] * v["EK_se"], fmt="o-", ms=3, color=f"C{i}", label=f"{k}: t(E_t[K] − K_min)")
            ax[0].step(t, v["lambda_t"], where="mid", color=f"C{i}", ls="--", lw=0.8, label=f"{k}: reduced-rank λ(r(t))")
            ax[1].plot(t, v["F"] - t * v["K_min"], "o-", ms=3, color=f"C{i}", label=f"{k}: F − t K_min")
            for tt in (1e-1, 1.0, 1e1, 1e2, 1e4, 1e6):
                j = int(np.argmin(np.abs(np.log(t / tt))))
                if abs(math.log(t[j] / tt)) < 0.5:
                    head[f"{k}: λ(t = {tt:g}) measured ± SE / reduced-rank / λ_∞"] = [
                        float(lam[j]), float(t[j] * v["EK_se"][j]), float(v["lambda_t"][j]), float(v["lambda_inf"])]
            j = -1
            head[f"{k}: (F − tK_min)/log t at t = {t[j]:g} vs λ_∞"] = [float((v["F"][j] - t[j] * v["K_min"]) / math.log(t[j])),
                                                                     float(v["lambda_inf"])]
        lam_inf = float(curves[0][1]["lambda_inf"])
        ax[0].axhline(lam_inf, color="k", lw=0.8, label=f"λ_∞ = {lam_inf:g} (true rank)")
        ax[0].set(xscale="log", xlabel="t = nβ", ylabel="λ(t) = dF/d log t − t K_min", title="LoRA model: λ(t) (exact Gibbs)")
        ax[0].legend(fontsize=6)
        tt = curves[0][1]["t"]
        ax[1].plot(tt, lam_inf * np.log(tt), "k--", lw=0.8, label="λ_∞ log t")
        ax[1].set(xscale="log", xlabel="t", ylabel="F − t K_min", title="free energy vs the SLT asymptotic")
        ax[1].legend(fontsize=6)
        savefig(fig, folder, "lora_lambda.png", figs)
        findings.append("λ(t) = t(E_t[K] − K_min) is measured exactly temperature by temperature (Gibbs); it is compared "
                        "with the true-rank RLCT λ_∞ and with the reduced-rank RLCT of the singular values resolved at t "
                        "(t s² ≥ 1); see the table for where each describes the curve.")
    if "ti_check" in results:
        t = results["ti_check"]["table"]
        z = (t[:, 1] - t[:, 4]) / np.sqrt(t[:, 2] ** 2 + t[:, 5] ** 2)
        head["TI (MALA) vs Gibbs-energy free energy: (t, F_TI, se, F_Gibbs, se, z)"] = [
            [float(r[0]), float(r[1]), float(r[2]), float(r[4]), float(r[5]), float(zz)] for r, zz in zip(t, z)]
        head["TI vs Gibbs: max |z|"] = float(np.abs(z).max())
        head["quadrature errors (TI, Gibbs), max"] = [float(t[:, 3].max()), float(t[:, 6].max())]
        findings.append(f"The free energy from the Gibbs energies agrees with deepeft's thermodynamic_integration "
                        f"(MALA) at {len(t)} sample sizes: max |z| = {np.abs(z).max():.2f}.")
    return {"headline": head, "findings": findings, "figures": figs}


PROBLEM = Problem(
    name="lora",
    title="Problem 1 (partial) — the LoRA model W_out·W_in ≈ M",
    description="Free energy F(t) and λ(t) = dF/d log t − t K_min of a two-layer linear (LoRA) model with Gaussian "
                "priors and a power-law teacher spectrum, measured exactly per temperature with deepeft's Gibbs "
                "sampler; against the true-rank and reduced-rank RLCTs, and checked against thermodynamic "
                "integration with MALA.  Not a closed form (see docs/lab.md).",
    parts=parts, summarize=summarize)
