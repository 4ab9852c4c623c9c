import numpy as np
import pytest


def _unit_inputs(N: int, n0: int, seed: int = 0) -> np.ndarray:
    """N random inputs with |x|²/n_0 = 1."""
    x = np.random.default_rng(seed).standard_normal((N, n0))
    return x * np.sqrt(n0) / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def unit_inputs():
    return _unit_inputs
