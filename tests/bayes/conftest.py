"""Fixtures for the bayes tests (helpers live in bayes_helpers.py)."""
import pytest


@pytest.fixture(autouse=True)
def _threads(one_torch_thread):
    """One torch thread for every test here (see tests/conftest.py)."""
