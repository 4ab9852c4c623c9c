"""Problem 1 (partial): the LoRA model's free energy from exact Gibbs energies vs thermodynamic integration."""
import math
import warnings

import numpy as np
import pytest

from deepeft.core.errors import ParameterError
from deepeft.lab import lora as Lo


def test_log_grid_quadrature_is_exact_for_a_known_integrand():
    """E_s = 1/(1 + s) ⇒ F(t) = log(1 + t); Simpson in log s with the [0, t_0] trapezoid."""
    ts = np.geomspace(1e-4, 24, 41)
    fe = Lo.free_energy_from_energy(ts, 1 / (1 + ts), np.zeros(41), 1.0)
    assert fe["F"] == pytest.approx(math.log(25), abs=1e-5)
    assert fe["quadrature_error"] < 1e-5


def test_prior_energy_matches_monte_carlo():
    rng = np.random.default_rng(0)
    M = Lo.teacher(5, 4, Lo.power_law_spectrum(3, 0.5), seed=1)
    A = rng.standard_normal((20000, 2, 5)) / 2.0   # γ = 4: sd 1/2
    B = rng.standard_normal((20000, 4, 2)) / 2.0
    K = 0.5 * np.sum((B @ A - M) ** 2, axis=(1, 2))
    assert abs(K.mean() - Lo.prior_energy(M, 2, 4.0)) < 4 * K.std() / math.sqrt(K.size)


def test_teacher_has_the_requested_spectrum():
    s = Lo.power_law_spectrum(4, 0.4)
    M = Lo.teacher(7, 5, s, seed=3)
    assert np.allclose(np.linalg.svd(M, compute_uv=False)[:4], s)


def test_reduced_rank_prediction():
    p = Lo.slt_predictions(12, 4, 12, Lo.power_law_spectrum(12, 0.5), [0.5, 2.5, 1e6])
    assert p["rank_t"].tolist() == [0, 2, 4]
    assert p["lambda_inf"] == pytest.approx((4 * 24 - 16) / 2)          # (H(M+N) − H²)/2
    assert p["K_min"] == pytest.approx(0.5 * sum(1 / i for i in range(5, 13)))


@pytest.mark.parametrize("copies", [1, 2, 3])
def test_gibbs_free_energy_matches_thermodynamic_integration(copies):
    """F(t) at t = 4, 8, 12 from Gibbs energies vs deepeft's thermodynamic_integration with MALA, |z| < 4
    (the Richardson quadrature-error estimates are checked to be below one Monte-Carlo σ, so they do not
    need a share of the tolerance)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = Lo._part_ti_check({"d_in": 4, "d_out": 4, "H": 2, "k": 4, "gamma": 1.0, "seed": 0, "alpha": 0.5,
                                 "copies": [copies], "n_betas": 9, "chains": 2, "draws": 300, "burnin": 300,
                                 "gibbs_points": 11, "gibbs_sweeps": 200})["table"][0]
    t, F_ti, se_ti, q_ti, F_g, se_g, q_g = out
    sig = math.hypot(se_ti, se_g)
    assert t == 4.0 * copies
    assert max(q_ti, q_g) < sig
    assert abs(F_ti - F_g) < 4 * sig


def test_bad_inputs_name_the_parameter():
    with pytest.raises(ParameterError, match="spectrum"):
        Lo.teacher(4, 4, [1.0, -0.5])
    with pytest.raises(ParameterError, match="spectrum"):
        Lo.teacher(4, 4, [1.0, float("nan")])
    with pytest.raises(ParameterError, match="spectrum"):
        Lo.teacher(3, 4, [1.0, 0.5, 0.3, 0.1])        # more singular values than min(d_in, d_out)
    with pytest.raises(ParameterError, match="H"):
        Lo.slt_predictions(4, 5, 6, [1.0], [1.0])     # rank larger than the widths
    with pytest.raises(ParameterError, match="H"):
        Lo.lora_model_and_data(np.ones((3, 3)), 4)
    with pytest.raises(ParameterError, match="t"):
        Lo.gibbs_energy(np.eye(3), 1, [1.0, 0.0])
    with pytest.raises(ParameterError, match="gamma"):
        Lo.gibbs_energy(np.eye(3), 1, [1.0], gamma=-1.0)
    with pytest.raises(ParameterError, match="alpha"):
        Lo.power_law_spectrum(4, 0.0)
    with pytest.raises(ParameterError, match="ts"):
        Lo.free_energy_from_energy(np.geomspace(1, 10, 4), np.ones(4), np.ones(4), 1.0)


def test_quadrature_with_a_linear_part():
    """E_s = K_min + 1/(1 + s): F = t K_min + log(1 + t), the t K_min part integrated exactly."""
    ts = np.geomspace(1e-4, 1e6, 31)
    fe = Lo.free_energy_from_energy(ts, 1.7 + 1 / (1 + ts), np.zeros(31), 2.7, K_min=1.7)
    assert fe["F"] == pytest.approx(1.7e6 + math.log(1 + 1e6), rel=1e-9)
    assert fe["F_running"][-1] - 1.7e6 == pytest.approx(math.log(1 + 1e6), rel=1e-3)
