"""Exact references: Aoyagi's DLN formula, the RRR table, normal crossings, BLR closed forms."""
from fractions import Fraction

import numpy as np
import pytest
from scipy import integrate

from deepeft.bayes import (aoyagi_dln, blr_expected_nll, blr_free_energy, blr_heat_capacity, blr_wbic,
                           normal_crossing_rlct, quadratic_llc_expectation, rrr_rlct)
from deepeft.core.errors import ParameterError


@pytest.mark.parametrize("widths,rank,lam,m", [
    ([5, 3, 5], 0, Fraction(13, 2), 2), ([5, 4, 5], 0, Fraction(8), 1), ([4, 3, 8], 0, Fraction(6), 1),
    ([10, 10, 10], 0, Fraction(75, 2), 1), ([10] * 6, 0, Fraction(30), 1), ([3, 3, 3], 1, Fraction(4), 1),
])
def test_aoyagi_examples(widths, rank, lam, m):
    assert aoyagi_dln(widths, rank) == (lam, m)


def test_rrr_table_equals_general_dln_formula_on_all_small_cases():
    count = 0
    for M in range(1, 8):
        for H in range(1, 8):
            for N in range(1, 8):
                for r in range(0, min(M, H, N) + 1):
                    assert aoyagi_dln([M, H, N], r) == rrr_rlct(M, H, N, r), (M, H, N, r)
                    count += 1
    assert count > 700


def test_regular_and_full_rank_limits():
    # f = b·a at a true point with ab ≠ 0: the zero set is a curve in R², codimension 1 → λ = 1/2
    assert aoyagi_dln([1, 1, 1], 1) == (Fraction(1, 2), 1)
    # at the origin (r = 0) the same model is the normal crossing a²b²: λ = 1/2, m = 2
    assert aoyagi_dln([1, 1, 1], 0) == (Fraction(1, 2), 2)
    assert normal_crossing_rlct([1, 2]) == (Fraction(1, 4), 1)
    assert normal_crossing_rlct([1, 1, 0]) == (Fraction(1, 2), 2)


def test_quadratic_expectations():
    h = [1.0, 3.0]
    assert quadratic_llc_expectation(h, 10.0, 0.0) == pytest.approx(1.0)
    e0 = quadratic_llc_expectation(h, 10.0, 2.0)
    e1 = quadratic_llc_expectation(h, 10.0, 2.0, lr=0.01)
    assert e1 > e0
    with pytest.raises(ParameterError, match="lr"):
        quadratic_llc_expectation(h, 10.0, 2.0, lr=4 / 32.0)


def test_blr_closed_forms_are_consistent():
    rng = np.random.default_rng(1)
    n, d, sigma, s = 20, 2, 0.7, 1.3
    X = rng.normal(size=(n, d))
    y = X @ np.array([0.5, -1.0]) + sigma * rng.normal(size=n)
    # thermodynamic integration of the exact E_β[n L_n] reproduces the exact free energy
    F, err = integrate.quad(lambda b: blr_expected_nll(X, y, sigma, s, b), 0, 1, epsabs=1e-10, limit=200, points=[1e-3, 1e-2, 0.1])
    assert F == pytest.approx(blr_free_energy(X, y, sigma, s), abs=1e-7)
    assert blr_wbic(X, y, sigma, s) == pytest.approx(blr_expected_nll(X, y, sigma, s, 1 / np.log(n)))
    # heat capacity: Var_β[nβ L] = −β² dE_β[nL]/dβ
    b, h = 0.3, 1e-5
    dE = (blr_expected_nll(X, y, sigma, s, b + h) - blr_expected_nll(X, y, sigma, s, b - h)) / (2 * h)
    assert blr_heat_capacity(X, y, sigma, s, b) == pytest.approx(-b * b * dE, rel=1e-5)


def test_ground_truth_bad_inputs():
    with pytest.raises(ParameterError, match="rank"):
        aoyagi_dln([3, 2, 3], 3)
    with pytest.raises(ParameterError, match="widths"):
        aoyagi_dln([3], 0)
    with pytest.raises(ParameterError, match="nbeta"):
        quadratic_llc_expectation([1.0], 0.0)
