"""Effective theory at initialisation: infinite width plus the first 1/n correction.

Conventions: :mod:`deepeft.conventions`.  Modules: ``recursion`` (kernel, NTK, vertex, K1 for N
inputs; residual MLPs), ``criticality`` (critical points, classes, asymptotics, learning-rate
prescriptions, aspect ratio, phase boundary), ``deep_linear`` (exact finite-width moments),
``predict`` (the Observables front end).
"""
from .criticality import (CriticalPoint, chi_parallel, chi_perp, critical_spec, criticality,  # noqa: F401
                          effective_aspect_ratio,
                          equivalence_learning_rates, fixed_point, k0_coefficients, large_depth_asymptotics,
                          optimal_aspect_ratio, phase_boundary, phase_boundary_curve, residual_nu,
                          scale_invariant_nu)
from .deep_linear import exact_four_point, exact_moment  # noqa: F401
from .ntk import ntk_fluctuations  # noqa: F401
from .large_n import Kernels, infinite_kernels  # noqa: F401
from .predict import ExpansionRegimeWarning, output_density, predict  # noqa: F401
from .recursion import propagate  # noqa: F401
from .training import frozen_kernels, nngp_posterior, predict_training  # noqa: F401
