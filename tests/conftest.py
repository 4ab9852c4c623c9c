"""Fixtures shared by every test directory."""
import pytest
import torch


@pytest.fixture
def one_torch_thread():
    """Small models and matrices: torch's intra-op threads only add barrier waits (on a shared 2-core
    machine a 40×4×32×32 bmm took 8 ms with 2 threads, 0.02 ms with 1).  Results do not depend on the
    thread count; restored afterwards."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
