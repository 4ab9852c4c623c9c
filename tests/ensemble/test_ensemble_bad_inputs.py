import numpy as np
import pytest
import torch

from deepeft.core.errors import DeepEFTError, ParameterError
from deepeft.core.spec import MLPSpec
from deepeft.ensemble import EnsembleMemoryError, measure

SPEC = MLPSpec.make("tanh", 3, 8, 4, C_W=1.0, C_b=0.0)
X = np.ones((1, 4))


@pytest.mark.parametrize("M", [0, 1, -5, 2.5, "10"])
def test_ensemble_too_small(M):
    with pytest.raises(ParameterError, match="ensemble"):
        measure(SPEC, X, ensemble=M)


def test_chunk_that_cannot_fit_reports_estimate():
    with pytest.raises(EnsembleMemoryError) as ei:
        measure(SPEC, X, ensemble=10**12, chunk_size=10**12)
    msg = str(ei.value)
    assert "needs about" in msg and "per network" in msg and "chunk_size <=" in msg
    assert isinstance(ei.value, DeepEFTError) and isinstance(ei.value, MemoryError)


def test_memory_limit_too_small_for_one_block():
    with pytest.raises(EnsembleMemoryError, match="RNG block"):
        measure(SPEC, X, ensemble=100, memory_limit=1000)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_but_absent():
    with pytest.raises(ParameterError, match="CUDA is not available"):
        measure(SPEC, X, ensemble=10, device="cuda")


@pytest.mark.parametrize("kw,match", [
    (dict(device="tpu"), "device"),
    (dict(dtype="float16"), "dtype"),
    (dict(seed=-1), "seed"),
    (dict(quantities=("kernel", "entropy")), "quantities"),
    (dict(quantities=()), "quantities"),
    (dict(hist_input=3), "hist_input"),
    (dict(ntk_method="finite-difference"), "ntk_method"),
    (dict(method="gaussian", quantities=("Theta",)), "method"),
    (dict(n_batches=1), "n_batches"),
])
def test_bad_arguments(kw, match):
    with pytest.raises(ParameterError, match=match):
        measure(SPEC, X, ensemble=10, **kw)


def test_bad_spec_and_inputs():
    with pytest.raises(ParameterError, match="spec"):
        measure({"depth": 3}, X, ensemble=10)
    with pytest.raises(ParameterError, match="inputs"):
        measure(SPEC, np.ones((2, 5)), ensemble=10)
    with pytest.raises(ParameterError, match="inputs"):
        measure(SPEC, np.array([[np.nan, 1, 1, 1]]), ensemble=10)
    with pytest.raises(ParameterError, match="N <= 8"):
        measure(SPEC, np.ones((9, 4)), ensemble=10, quantities=("V",))


def test_divergence_is_reported():
    from deepeft.core.errors import DivergenceError
    spec = MLPSpec.make("linear", 40, 4, 4, C_W=1e9)
    with pytest.raises(DivergenceError, match="layer"):
        measure(spec, X, ensemble=16, dtype="float32", quantities=("kernel",))


def test_smallest_ensemble_works_without_errors_bars():
    obs = measure(SPEC, X, ensemble=2, quantities=("kernel",))
    assert np.all(np.isnan(obs.errors["kernel"][1:])) and obs.meta["jackknife_batches"] == 1
