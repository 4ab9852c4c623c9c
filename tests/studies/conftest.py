"""Shared helpers for the studies tests."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest


def write_study(tmp_path: Path, body: str, name: str = "study.toml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(body))
    return p


@pytest.fixture
def study_file(tmp_path):
    def make(body: str, name: str = "study.toml") -> Path:
        return write_study(tmp_path, body, name)
    return make


# A synthetic-point study: many cheap points, to exercise scheduling, store and resume.
SYNTH_STUDY = """
[study]
name = "synth"
[inputs]
n_inputs = 2
input_dim = 4
[grid]
activation = ["tanh", "relu"]
width = [8, 16, 32, 64]
depth = [3, 6, 9]
seed = [0, 1]
C_b = 0.0
C_W = 1.0
"""

# A small real study (theory + ensemble engines): a few seconds in total.
REAL_STUDY = """
[study]
name = "tiny"
[inputs]
n_inputs = 2
input_dim = 4
seed = 1
[run]
observables = ["kernel", "V_norm", "Theta"]
[defaults]
ensemble = 64
[grid]
activation = ["relu", "tanh"]
width = [8, 16]
depth = [4]
C_b = "critical"
C_W = "critical"
[[points]]
activation = "tanh"
width = 8
depth = 4
C_b = 0.1
C_W = 2.0
seed = 3
"""
