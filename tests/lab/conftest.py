"""Fixtures for the lab tests."""
import pytest
import torch


@pytest.fixture(autouse=True)
def _threads():
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is faster and deterministic
    yield
    torch.set_num_threads(old)
