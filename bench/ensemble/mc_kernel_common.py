"""What the two MC-kernel benchmark scripts share (numpy only: imported from deepeft's and from
neural-tangents' venv): the network flags and the inputs, so both tools time the same work."""
import numpy as np


def add_network_args(ap) -> None:
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--depth", type=int, default=5)
    ap.add_argument("--n-inputs", type=int, default=100)
    ap.add_argument("--input-dim", type=int, default=8)


def unit_inputs(n_inputs: int, input_dim: int) -> np.ndarray:
    """Seeded inputs with |x|²/n₀ = 1."""
    x = np.random.default_rng(0).standard_normal((n_inputs, input_dim))
    return x * (np.sqrt(input_dim) / np.linalg.norm(x, axis=1, keepdims=True))
