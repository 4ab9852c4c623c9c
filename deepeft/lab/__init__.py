"""The lab: exactly solvable learning problems, their asymptotic (SLT / random-matrix) answers, and
deepeft's measured answers side by side (issue 15; ``docs/lab.md``).

- :data:`PROBLEMS`      the registry {name: :class:`Problem`}; :func:`list_problems`
- :func:`run_problem`   compute a problem into an output folder (embedded store, resumable), then
                        write its figures (PNG), ``NAME.json`` and ``NAME.html``

Problems: ``regression`` (problem 3: ridge / random features / Bayesian linear regression),
``dln`` (problem 4: deep linear networks exact at finite width), ``lora`` (problem 1, partial: the
LoRA model's λ(t) and free energy by exact Gibbs sampling, not a closed form).
"""
from __future__ import annotations

import os

from ..core.errors import ParameterError
from ._runner import LabResult, Part, Problem, run


def _registry() -> dict[str, Problem]:
    from . import dln, lora, regression

    return {p.name: p for p in (regression.PROBLEM, dln.PROBLEM, lora.PROBLEM)}


def list_problems() -> list[dict]:
    """[{'name', 'title', 'description'}] of every registered problem."""
    return [{"name": p.name, "title": p.title, "description": p.description} for p in _registry().values()]


def get_problem(name: str) -> Problem:
    reg = _registry()
    if name not in reg:
        raise ParameterError("problem", name, f"one of {sorted(reg)}")
    return reg[name]


def run_problem(name: str, out: str | os.PathLike | None = None, *, quick: bool = False,
                progress: bool = False) -> LabResult:
    """Run problem ``name`` (see :func:`deepeft.lab._runner.run`)."""
    return run(get_problem(name), out, quick=quick, progress=progress)


__all__ = ["run_problem", "list_problems", "get_problem", "LabResult", "Part", "Problem"]
