"""Bayesian thermodynamics of trained networks (issue 4).

Sampling the localised tempered posterior p(w) ∝ exp(−nβ L_n(w) − γ/2 ‖w − w*‖²) of any
``nn.Module`` with vectorised SGLD / pSGLD / MALA chains, and the quantities built on it:

- :func:`sample`                     the engine (vectorised chains, diagnostics, divergence detection)
- :func:`estimate_llc`               local learning coefficient λ̂ (weight-restricted via ``params=``)
- :func:`calibrate`                  step size from pilot runs (stability, MH acceptance, flatness)
- :func:`wbic`, :func:`thermodynamic_integration`, :func:`heat_capacity`, :func:`beta_sweep`
- :func:`susceptibilities`           Cov(observable, nβ L_n) with error bars
- :func:`degrade`                    SGLD-degraded copies at a target Δloss or temperature
- :func:`llc_sweep`                  λ̂ of many models (e.g. training checkpoints) into the embedded store, resumable, on Dask
                                     (run by the study runner: :mod:`deepeft.studies.llc_sweep`, re-exported here lazily)
- diagnostics: :func:`rhat`, :func:`ess`, :func:`trace_drift`
- ground truths: :func:`aoyagi_dln`, :func:`rrr_rlct`, :func:`normal_crossing_rlct`,
  :func:`quadratic_llc_expectation`, Bayesian linear regression closed forms, and
  :func:`dln_gibbs` (exact Gibbs sampler: the finite-nβ λ̂ of a deep linear network)

Conventions: :mod:`deepeft.conventions`; data/loss formats: :mod:`deepeft.bayes._data`.
"""
from .calibration import CalibrationResult, calibrate
from .degrade import DegradeResult, degrade
from .dln_gibbs import DLNGibbsResult, dln_gibbs
from .diagnostics import ess, mcse_mean, rhat, summarize_trace, trace_drift
from .ground_truth import (
    aoyagi_dln,
    blr_expected_nll,
    blr_free_energy,
    blr_heat_capacity,
    blr_wbic,
    dln_num_params,
    homogeneous_rlct,
    normal_crossing_rlct,
    quadratic_llc_expectation,
    rrr_rlct,
)
from .llc import LLCResult, estimate_llc, llc_from_samples
from .sweep import plot_llc_sweep
from .samplers import (
    ConvergenceWarning,
    DivergenceWarning,
    SampleResult,
    StepSizeWarning,
    default_nbeta,
    sample,
    select_parameters,
)
from .susceptibility import SusceptibilityResult, per_sample_loss, susceptibilities
from .thermo import (
    FreeEnergyResult,
    TemperatureResult,
    beta_sweep,
    heat_capacity,
    plot_beta_sweep,
    plot_loss_trace,
    thermodynamic_integration,
    variance_estimate,
    wbic,
)

__all__ = [
    "sample", "SampleResult", "select_parameters", "default_nbeta",
    "estimate_llc", "llc_from_samples", "LLCResult",
    "calibrate", "CalibrationResult",
    "wbic", "thermodynamic_integration", "heat_capacity", "variance_estimate", "beta_sweep",
    "FreeEnergyResult", "TemperatureResult", "plot_beta_sweep", "plot_loss_trace",
    "susceptibilities", "per_sample_loss", "SusceptibilityResult",
    "degrade", "DegradeResult",
    "llc_sweep", "load_llc_sweep", "plot_llc_sweep",
    "rhat", "ess", "mcse_mean", "trace_drift", "summarize_trace",
    "aoyagi_dln", "rrr_rlct", "normal_crossing_rlct", "homogeneous_rlct", "quadratic_llc_expectation",
    "blr_free_energy", "blr_expected_nll", "blr_wbic", "blr_heat_capacity", "dln_num_params",
    "dln_gibbs", "DLNGibbsResult",
    "StepSizeWarning", "DivergenceWarning", "ConvergenceWarning",
]


def __getattr__(name):
    # lazy re-export for users: the LLC sweep is run by the study runner (deepeft.studies), which the
    # engine never imports itself (docs/architecture.md, "Rooms and one-way imports")
    if name in ("llc_sweep", "load_llc_sweep"):
        from ..studies import llc_sweep as _sweep

        return getattr(_sweep, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
