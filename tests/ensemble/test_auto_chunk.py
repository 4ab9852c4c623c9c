"""The automatic chunk on CPU stays within AUTO_CHUNK_BYTES_CPU (issue 11: measure() of the README
tour peaked at 3 GB); chunking never changes a number."""
import numpy as np

from deepeft.ensemble import measure
from deepeft.ensemble.sampler import AUTO_CHUNK_BYTES_CPU, EnsembleSampler
from deepeft.theory import critical_spec


def test_default_chunk_is_bounded_and_numbers_unchanged():
    spec = critical_spec("tanh", depth=8, width=64, input_dim=8)  # the README tour's measure()
    x = np.random.default_rng(0).standard_normal((3, 8))
    s = EnsembleSampler(spec, x, 4096, seed=0, method="weights", ntk=True)
    chunk = s.plan()
    assert chunk * s.bytes_per_net <= AUTO_CHUNK_BYTES_CPU or chunk == s.rng_block
    assert chunk < 2048  # the old rule (half of free RAM, at most 2048) took 2048 here: 3 GB
    a = measure(spec, x, ensemble=256, seed=0, quantities=("kernel", "Theta"))
    b = measure(spec, x, ensemble=256, seed=0, quantities=("kernel", "Theta"), chunk_size=256)
    np.testing.assert_array_equal(a["kernel"], b["kernel"])
    np.testing.assert_array_equal(a["Theta"], b["Theta"])
