"""Sampler kernels: one small module each, registered here by name (``sample(..., sampler=NAME)``).

Adding a sampler: write a :class:`~deepeft.bayes.kernels.base.Kernel` subclass in a new module and
add it to :data:`KERNELS` (or call :func:`register` at run time); the driver
(:mod:`deepeft.bayes.driver`) gives it devices, chunked data, health checks, checkpoints and Ctrl-C.
See docs/architecture.md, "Adding a sampler".
"""
from __future__ import annotations

from .base import Kernel, Problem, Settings
from .gibbs import Gibbs
from .mala import MALA
from .psgld import PSGLD
from .sgld import SGLD

#: sampler name -> kernel class (pSGLD is SGLD's ``preconditioned`` variant: precondition='rmsprop')
KERNELS: dict[str, type[Kernel]] = {k.name: k for k in (SGLD, MALA, Gibbs)}


def register(kernel: type[Kernel]) -> type[Kernel]:
    """Make ``kernel`` available as ``sample(..., sampler=kernel.name)`` (usable as a class decorator)."""
    KERNELS[kernel.name] = kernel
    return kernel


__all__ = ["KERNELS", "register", "Kernel", "Problem", "Settings", "SGLD", "PSGLD", "MALA", "Gibbs"]
