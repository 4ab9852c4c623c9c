"""Susceptibilities: how observables respond to the tempered posterior around w*.

For an observable O(w) (a vector: a user function of the model's output on a probe dataset),
the susceptibility returned here is the posterior covariance (the form asked for in issue 4;
cf. Baker et al. 2025, "Studying small language models with susceptibilities")::

    χ_k = Cov_p[O_k(w), nβ·L_n(w)] = −β ∂E_β[O_k]/∂β

(the second equality because ∂_β E_β[O] = −n Cov(O, L_n) for p ∝ φ e^{−nβL_n}); a negative χ_k
means O_k grows as the posterior is heated.  The covariance is estimated from the SGLD draws with
the minibatch loss recorded at each draw — unbiased for Cov(O, L_n) because the minibatch is
drawn independently of the state.  Error bars: sd(z)/sqrt(ESS(z)) for the product series
z = (O − Ō)(nβL − nβL̄) pooled over healthy chains.

Default observable: the per-sample losses on the probe set (``loss_fn`` applied to each probe
sample), i.e. the per-sample susceptibilities of the loss landscape.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from torch import nn
from torch.func import vmap

from ..core.errors import ParameterError
from ..core.jsonutil import to_jsonable as _jsonable
from .diagnostics import ess
from .samplers import SampleResult, sample
from ._data import resolve_loss, split_data


@dataclass
class SusceptibilityResult:
    chi: np.ndarray
    chi_se: np.ndarray
    observable_mean: np.ndarray
    llc_mean: float
    nbeta: float
    num_draws_used: int
    samples: SampleResult | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        return _jsonable({"chi": self.chi, "chi_se": self.chi_se, "observable_mean": self.observable_mean,
                          "llc_mean": self.llc_mean, "nbeta": self.nbeta, "num_draws_used": self.num_draws_used})


def per_sample_loss(loss_fn: Any) -> Callable:
    """Observable: ``loss_fn`` evaluated on each probe sample separately (vector of length n_probe)."""
    lf = resolve_loss(loss_fn)

    def obs(out, y):
        if y is None:
            return vmap(lambda o: lf(o[None], None))(out)
        return vmap(lambda o, t: lf(o[None], t[None]))(out, y)

    return obs


def covariance_with_error(O: np.ndarray, E: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cov(O_k, E) and its MCSE from (chains, draws, k) observables and (chains, draws) energies."""
    if O.ndim == 2:
        O = O[..., None]
    Oc = O - O.mean(axis=(0, 1), keepdims=True)
    Ec = E - E.mean()
    Z = Oc * Ec[..., None]
    N = Z.shape[0] * Z.shape[1]
    chi = Z.mean(axis=(0, 1)) * N / max(N - 1, 1)
    se = np.empty(Z.shape[2])
    for k in range(Z.shape[2]):
        z = Z[:, :, k]
        sd = z.std(ddof=1)
        se[k] = sd / math.sqrt(ess(z)) if (z.shape[1] >= 4 and sd > 0) else (sd / math.sqrt(N) if N > 1 else np.nan)
    return chi, se


def susceptibilities(model: nn.Module, data: Any, loss_fn: Any = "mse", *, probe: Any = None,
                     observable: Callable | None = None, **sample_kwargs) -> SusceptibilityResult:
    """χ = Cov_p[O, nβ L_n] with error bars (see module docstring).

    ``probe``: in-memory ``(x, y)`` on which the observable is computed (default: the first
    ≤1024 training samples).  ``observable(output, target) -> tensor[k]`` (default: per-sample
    losses).  Keywords go to :func:`sample` (``lr``, ``localization``, ``nbeta``, ``num_chains``,
    ``num_draws`` …).
    """
    if probe is not None:
        px, py, pl = split_data(probe)
        if pl is not None:
            raise ParameterError("probe", "a DataLoader", "in-memory tensors (x, y)")
    obs = observable if observable is not None else per_sample_loss(loss_fn)
    if not callable(obs):
        raise ParameterError("observable", obs, "a callable (output, target) -> tensor")
    res = sample(model, data, loss_fn, observable=obs, probe=probe, **sample_kwargs)
    if isinstance(res.nbeta, np.ndarray):
        raise ParameterError("nbeta", "one value per chain", "a single nβ")
    ok = res.healthy
    O = res.observables[ok]
    E = res.nbeta * res.loss_trace[ok]
    chi, se = covariance_with_error(O, E)
    return SusceptibilityResult(chi=chi, chi_se=se, observable_mean=O.mean(axis=(0, 1)),
                                llc_mean=float(res.nbeta * (res.loss_trace[ok].mean() - res.init_loss)),
                                nbeta=float(res.nbeta), num_draws_used=int(E.size), samples=res)
