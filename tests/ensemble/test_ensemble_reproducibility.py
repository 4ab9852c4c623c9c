import numpy as np
import pytest

from deepeft.core.spec import MLPSpec
from deepeft.ensemble import EnsembleSampler, measure, sample_preactivations

Q = ("kernel", "V", "V_norm", "kurtosis", "Theta", "NTK_fluct", "histogram")


def _same(a, b):
    assert set(a.values) == set(b.values)
    for k in a.values:
        assert np.array_equal(a.values[k], b.values[k], equal_nan=True), k
        assert np.array_equal(a.errors[k], b.errors[k], equal_nan=True), k
    assert a.meta.get("histogram") == b.meta.get("histogram")


@pytest.mark.parametrize("kw", [
    dict(act="tanh", residual=None, method="auto"),
    dict(act="relu", residual=(0.7, 0.5), method="auto"),
    dict(act="gelu", residual=None, method="gaussian"),
])
def test_same_seed_same_numbers_and_chunking_invariance(kw, unit_inputs):
    spec = MLPSpec.make(kw["act"], 4, 12, 5, C_W=1.4, C_b=0.05, output_width=3, residual=kw["residual"])
    x = unit_inputs(3, 5)
    q = Q if kw["method"] != "gaussian" else ("kernel", "V", "V_norm", "kurtosis", "histogram")
    a = measure(spec, x, ensemble=150, seed=7, quantities=q, method=kw["method"])
    b = measure(spec, x, ensemble=150, seed=7, quantities=q, method=kw["method"])
    c = measure(spec, x, ensemble=150, seed=7, quantities=q, method=kw["method"], chunk_size=32)
    d = measure(spec, x, ensemble=150, seed=7, quantities=q, method=kw["method"], chunk_size=50)  # → 48
    _same(a, b)
    _same(a, c)
    _same(a, d)
    assert c.meta["chunk_size"] == 32 and d.meta["chunk_size"] == 48
    e = measure(spec, x, ensemble=150, seed=8, quantities=q, method=kw["method"])
    assert not np.array_equal(a["kernel"][1:], e["kernel"][1:])


def test_networks_do_not_depend_on_chunking_or_ensemble_size(unit_inputs):
    spec = MLPSpec.make("tanh", 3, 10, 4, C_W=1.0, C_b=0.0)
    x = unit_inputs(2, 4)
    z1 = sample_preactivations(spec, x, 64, seed=3, rng_block=16)
    z2 = sample_preactivations(spec, x, 40, seed=3, rng_block=16)  # first 32 = two whole RNG blocks
    assert torch_equal(z1[3][:32], z2[3][:32])


def torch_equal(a, b):
    return bool((a == b).all())


@pytest.mark.parametrize("width,n_in,N", [
    (16, 4, 2),  # N×N Cholesky factor on every layer
    (4, 3, 6),   # fewer features than inputs: rank-(n + 1) factor on every layer
])
def test_gaussian_and_weights_paths_same_distribution(width, n_in, N, unit_inputs):
    spec = MLPSpec.make("tanh", 3, width, n_in, C_W=1.2, C_b=0.1)
    x = unit_inputs(N, n_in)
    a = measure(spec, x, ensemble=3000, seed=1, method="gaussian", quantities=("kernel", "V_pairs"))
    b = measure(spec, x, ensemble=3000, seed=2, method="weights", quantities=("kernel", "V_pairs"))
    for k in ("kernel", "V_pairs"):
        se = np.sqrt(a.errors[k] ** 2 + b.errors[k] ** 2)
        z = np.abs(a[k] - b[k])[1:] / se[1:]
        assert z.max() < 4.0, (k, z)


def test_standard_and_ntk_parameterisations_same_networks(unit_inputs):
    x = unit_inputs(2, 4)
    kw = dict(C_W=1.2, C_b=0.1)
    a = sample_preactivations(MLPSpec.make("tanh", 3, 8, 4, parameterization="ntk", **kw), x, 16, seed=0, method="weights")
    b = sample_preactivations(MLPSpec.make("tanh", 3, 8, 4, parameterization="standard", **kw), x, 16, seed=0, method="weights")
    assert all(torch_equal(a[l], b[l]) for l in a)


def test_sampler_singular_covariance_is_exact(unit_inputs):
    # duplicate inputs and N > n: Ĝ is singular, the eigen fallback must still give exact samples
    spec = MLPSpec.make("relu", 3, 2, 4, C_W=2.0, C_b=0.0)
    x = np.repeat(unit_inputs(1, 4), 4, axis=0)
    z = sample_preactivations(spec, x, 32, seed=0)
    for l in z:
        assert bool(np.allclose(z[l][:, 0].numpy(), z[l][:, 3].numpy(), atol=1e-12))
