"""deepeft: the effective theory of deep networks, predicted and measured side by side.

Conventions are stated once in :mod:`deepeft.conventions`.  Layout:

- ``deepeft.core``     activations, Gaussian integrals, specs, validation, the Observables type
- ``deepeft.theory``   infinite-width + 1/n recursions: kernel, criticality, vertex, NTK, residual, deep linear
- ``deepeft.ensemble`` Monte-Carlo ensembles of real networks, empirical NTK, comparison
- ``deepeft.bayes``    SGLD/MALA samplers, LLC, free energy, heat capacity, susceptibilities, ground truths
- ``deepeft.studies``  study files, Dask runner, embedded result store
- ``deepeft.report``   figures and the HTML report
- ``deepeft.cli``      the command line
"""
__version__ = "0.1.0"

from .core.activations import Activation, get_activation  # noqa: E402,F401
from .core.errors import DeepEFTError, ParameterError  # noqa: E402,F401
from .core.observables import Observables  # noqa: E402,F401
from .core.spec import MLPSpec  # noqa: E402,F401


def __getattr__(name):  # lazy re-exports so `import deepeft` stays light
    if name == "load_study":
        from .studies import load_study
        return load_study
    if name in ("predict", "critical_spec", "criticality", "infinite_kernels"):
        from . import theory
        return getattr(theory, name)
    if name in ("measure", "compare", "empirical_ntk"):
        from . import ensemble
        return getattr(ensemble, name)
    if name == "estimate_llc":
        from .bayes import estimate_llc
        return estimate_llc
    raise AttributeError(f"module 'deepeft' has no attribute {name!r}")
