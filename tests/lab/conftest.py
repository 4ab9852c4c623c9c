"""Fixtures for the lab tests."""
import pytest


@pytest.fixture(autouse=True)
def _threads(one_torch_thread):
    """One torch thread for every test here (see tests/conftest.py)."""
