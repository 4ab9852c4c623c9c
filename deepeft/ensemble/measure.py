"""measure(): sample an ensemble, stream it through the estimators, return Observables with errors."""
from __future__ import annotations

import time
from typing import Callable, Iterable

import numpy as np
import torch

from ..core import quantities as _quantities
from ..core.progress import check_progress, progress_bar
from ..core.errors import ParameterError, check_int
from ..core.observables import Observables
from ..core.spec import MLPSpec
from .estimators import (BatchAccumulator, histogram, jackknife, kernel_estimates, kernel_statistics,
                         ntk_estimates, ntk_statistics)
from .ntk import ensemble_ntk_autograd, ntk_first_layer, ntk_forward_step
from .sampler import EnsembleSampler

#: every quantity measure() can return (registered in deepeft.core.quantities, which gives shapes,
#: meanings and estimators), the group 'NTK_fluct' (= Theta, Theta_var, NTK_A, NTK_B) and
#: 'histogram' (the last-layer output histogram in meta['histogram']).  Quantities registered later
#: with an estimator (e.g. estimator='derived') are accepted too.
QUANTITIES = (*_quantities.names(measured=True), *_quantities.MEASURE_GROUPS, "histogram")
DEFAULT_QUANTITIES = ("kernel", "V", "V_pairs", "V_norm", "kurtosis", "Theta", "histogram")
#: the full V tensor is N⁴ per layer; by default it is measured only up to this many inputs.
MAX_FULL_V_INPUTS = 8


def _resolve_quantities(quantities, N: int) -> tuple[set[str], set[str], bool, list[str]]:
    """(requested quantities under their registered names, incl. 'histogram'; those plus what
    derived ones are computed from; whether the full V is measured; the derived quantities to
    compute, in registry order)."""
    if isinstance(quantities, str):
        quantities = (quantities,)
    q: set[str] = set()
    bad = []
    for name in quantities:
        if name in _quantities.MEASURE_GROUPS:
            q |= set(_quantities.MEASURE_GROUPS[name])
        elif name == "histogram":
            q.add(name)
        elif _quantities.is_registered(name) and _quantities.get(name).measured:
            q.add(_quantities.canonical(name, stacklevel=5))
        else:
            bad.append(name)
    allowed = (*_quantities.names(measured=True), *_quantities.MEASURE_GROUPS, "histogram")
    if bad:
        raise ParameterError("quantities", sorted(bad), "a subset of " + ", ".join(allowed))
    if not q:
        raise ParameterError("quantities", (), "at least one of " + ", ".join(allowed))
    explicit_V = "V" in q and quantities is not DEFAULT_QUANTITIES
    if "V" in q and N > MAX_FULL_V_INPUTS:
        if explicit_V:
            raise ParameterError("quantities", "V", f"'V' (the full N⁴ vertex) only for N <= {MAX_FULL_V_INPUTS} inputs "
                                 f"(got N = {N}); ask for 'V_pairs' (V_(αα)(ββ)) and 'V_norm' instead")
        q.discard("V")
    need = set(q)
    todo = [n for n in q if n != "histogram"]
    while todo:  # the quantities derived ones are computed from
        for m in _quantities.get(todo.pop()).needs:
            if m not in need:
                need.add(m)
                todo.append(m)
    derived = [n for n in _quantities.names(measured=True) if n in need and _quantities.get(n).estimator == "derived"]
    return q, need, "V" in q, derived


def measure(spec: MLPSpec, inputs, ensemble: int = 1000, seed: int = 0, device="cpu", dtype=torch.float64,
            chunk_size: int | None = None, quantities: Iterable[str] = DEFAULT_QUANTITIES, *,
            ntk_method: str = "forward", method: str = "auto", n_batches: int = 32,
            rng_block: int | None = None, memory_limit: int | None = None, hist_input: int = 0,
            hist_bins: int = 60, progress: bool | str | Callable[[int, int], None] = "auto") -> Observables:
    """Measure PDLT quantities on ``ensemble`` networks sampled from ``spec`` at ``inputs``.

    Returns ``Observables(source='ensemble')`` with values and jackknife standard errors (over
    networks, ``n_batches`` batches) under the theory's names and shapes: kernel (L,N,N),
    V (L,N,N,N,N; N ≤ 8), V_pairs (L,N,N), V_norm (L,N), kurtosis (L,N), Theta (L,N,N), and with
    'NTK_fluct' Theta_var, NTK_A, NTK_B (L,N,N).  meta['histogram'] holds the last-layer output
    histogram at input ``hist_input``.

    method: 'gaussian' (exact conditional-Gaussian sampling, no weights), 'weights', or 'auto'
    ('weights' when an NTK is requested).  ntk_method: 'forward' (exact forward equation) or
    'autograd' (torch.func Jacobians with per-parameter rates).  Same seed ⇒ same numbers;
    chunk_size never changes the result.
    """
    t0 = time.perf_counter()
    if not isinstance(spec, MLPSpec):
        raise ParameterError("spec", type(spec).__name__, "an MLPSpec")
    M = check_int("ensemble", ensemble, 2)
    progress = check_progress(progress, allow_callable=True)
    x_rows = np.atleast_2d(np.asarray(inputs, dtype=float)).shape[0] if not isinstance(inputs, torch.Tensor) else (
        inputs.shape[0] if inputs.dim() > 1 else 1)
    keep, q, full_V, derived = _resolve_quantities(quantities, x_rows)
    if ntk_method not in ("forward", "autograd"):
        raise ParameterError("ntk_method", ntk_method, "'forward' or 'autograd'")
    if method not in ("auto", "gaussian", "weights"):
        raise ParameterError("method", method, "'auto', 'gaussian' or 'weights'")
    want_ntk = any(_quantities.get(n).estimator in ("ntk", "ntk_fluct") for n in q if n != "histogram")
    if want_ntk and method == "gaussian":
        raise ParameterError("method", method, "'weights' or 'auto' when an NTK quantity is requested "
                             "(the NTK needs the weights)")
    smethod = "weights" if (want_ntk or method == "weights") else "gaussian"
    n_batches = check_int("n_batches", n_batches, 2)
    sampler = EnsembleSampler(spec, inputs, M, seed=seed, device=device, dtype=dtype, method=smethod,
                              rng_block=rng_block, ntk=want_ntk)
    N = sampler.N
    hist_input = check_int("hist_input", hist_input, 0)
    if hist_input >= N:
        raise ParameterError("hist_input", hist_input, f"an input index 0 … {N - 1}")
    extra = 0
    if want_ntk and ntk_method == "autograd":
        P = sum(spec.width(l) * (spec.fan_in(l) + 1) for l in range(1, spec.depth + 1))
        s = torch.finfo(sampler.dtype).bits // 8
        extra = 3 * s * N * sum(spec.all_widths[1:]) * P
    sampler.plan(chunk_size, memory_limit, full_V=full_V, extra_per_network=extra)

    acc = BatchAccumulator(M, n_batches, sampler.rng_block)
    L = spec.depth
    hist_parts: list[torch.Tensor] = []
    with progress_bar(M, "ensemble", progress=progress, unit="net") as bar:
        for a, b in sampler.chunks():
            Mc = b - a
            H = None
            Ws, bs = [], []
            for st in sampler.layers(a, b, need_z_last="histogram" in q):
                for name, v in kernel_statistics(st, Mc, full_V).items():
                    if name.endswith("@outer"):
                        acc.add_outer(name[:-6], st.l, a, v)
                    else:
                        acc.add(name, st.l, a, v)
                if want_ntk and ntk_method == "forward":
                    if st.l == 1:
                        H = ntk_first_layer(spec, sampler.x)
                        stats = {k: v.expand(Mc, *v.shape[1:]) for k, v in ntk_statistics(H.unsqueeze(0)).items()}
                    else:
                        H = ntk_forward_step(spec, st.l, H, st.W, st.sigma_prev, st.dsigma_prev)
                        stats = ntk_statistics(H)
                    for name, v in stats.items():
                        acc.add(name, st.l, a, v)
                elif want_ntk:
                    Ws.append(st.W)
                    bs.append(st.b)
                if st.l == L and "histogram" in q:
                    hist_parts.append(st.z[:, hist_input, :].reshape(-1).to(torch.float64).cpu())
            if want_ntk and ntk_method == "autograd":
                for l, Hl in enumerate(ensemble_ntk_autograd(spec, sampler.x, Ws, bs), start=1):
                    for name, v in ntk_statistics(Hl).items():
                        acc.add(name, l, a, v)
            del H, Ws, bs
            if bar is not None:
                bar.update(Mc)
            elif callable(progress):
                progress(b, M)

    counts = acc.counts.numpy()
    want = frozenset(n for n in q if n != "histogram" and _quantities.get(n).estimator == "kernel") | {"kernel"}
    per_layer_v: dict[str, list] = {}
    per_layer_e: dict[str, list] = {}
    for l in range(1, L + 1):
        n_prev = spec.fan_in(l)
        S = acc.batch_sums(["k", "kkd", "Td", "m4", "kk", "T"] if len(want) > 1 else ["k"], l)
        if want_ntk:
            S.update(acc.batch_sums(["h", "hh", "hsq", "hx", "hoff"], l))

        def estimates(s, m, n_prev=n_prev):
            e = kernel_estimates(s, m, n_prev, full_V, want)
            if want_ntk:
                e.update(ntk_estimates(s, m, n_prev))
            for d in derived:  # registered derived quantities, on every jackknife replica
                rec = _quantities.get(d)
                e[d] = np.asarray(rec.derive({k: e[k] for k in rec.needs}), dtype=np.float64)
            return e

        est, se = jackknife(estimates, S, counts)
        for k in est:
            per_layer_v.setdefault(k, []).append(est[k])
            per_layer_e.setdefault(k, []).append(se[k])
    values = {k: np.stack(v) for k, v in per_layer_v.items() if k in keep}
    errors = {k: np.stack(v) for k, v in per_layer_e.items() if k in keep}
    meta = {
        "ensemble": M, "seed": int(seed), "device": str(sampler.device), "dtype": str(sampler.dtype).replace("torch.", ""),
        "method": smethod, "ntk_method": ntk_method if want_ntk else None, "chunk_size": sampler.chunk_size,
        "rng_block": sampler.rng_block, "jackknife_batches": acc.J,
        "bytes_per_network": sampler.bytes_per_net,
        "estimator": "kernel/V: conditional Ĝ (Rao–Blackwellised cross-neuron) on plain layers, "
                     "cross-neuron U-statistics on residual layers; errors: jackknife over network batches",
        "seconds": time.perf_counter() - t0,
    }
    if "histogram" in q and hist_parts:
        samples = torch.cat(hist_parts).numpy()
        h = histogram(samples, bins=hist_bins)
        meta["histogram"] = {"layer": L, "input_index": hist_input, **{k: (v.tolist() if isinstance(v, np.ndarray) else v)
                                                                      for k, v in h.items()}}
    return Observables(spec=spec, inputs=sampler.x_np, source="ensemble", values=values, errors=errors, meta=meta)
