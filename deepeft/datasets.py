"""Data sets by name for training ensembles: synthetic generators and small packaged real data.

Every generator returns a :class:`Dataset` with inputs normalised to the sphere |x|² = n_0 (so that
|x|²/n_0 = 1, the scale the kernel recursions assume; conventions: :mod:`deepeft.conventions`) and
labels of shape (N, n_out).  Same (name, sizes, seed) ⇒ same numbers.

* ``'teacher'``: labels are the outputs of one random network (``teacher_spec``, default a critical
  ReLU MLP of depth 3 and width 256) — drawn by the project's ensemble sampler, network 0 of seed
  ``seed`` — plus optional Gaussian label noise ``noise`` (variance).
* ``'random_features'``: y = Σ_k a_k cos(w_k·x/√n_0 + φ_k) √(2/F), F = ``features`` random Fourier
  features, w_k ~ N(0, I), a_k ~ N(0, 1), φ_k ~ U(0, 2π).
* ``'sine_sphere'``: y = sin(ω u·x/√n_0) for a random unit direction u (``frequency`` ω).
* ``'digits'``: scikit-learn's bundled 8×8 digits (1797 images, no download), n_0 = 64, one-hot
  labels centred to e_k − 1/10 (n_out = 10).  Needs the optional scikit-learn package.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .core.errors import ParameterError, check_int, check_nonnegative, check_positive

DATASETS = ("teacher", "random_features", "sine_sphere", "digits")


@dataclass
class Dataset:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    meta: dict = field(default_factory=dict)

    @property
    def input_dim(self) -> int:
        return self.x_train.shape[1]

    @property
    def output_dim(self) -> int:
        return self.y_train.shape[1]


def sphere(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """n points uniform on the sphere of radius √dim (|x|²/dim = 1)."""
    x = rng.standard_normal((n, dim))
    return x * (math.sqrt(dim) / np.linalg.norm(x, axis=1, keepdims=True))


def _split(name, x, y, n_train, meta) -> Dataset:
    return Dataset(name, x[:n_train], y[:n_train], x[n_train:], y[n_train:], meta)


def load_dataset(name: str, n_train: int = 16, n_test: int = 8, *, input_dim: int = 8, seed: int = 0,
                 output_dim: int = 1, noise: float = 0.0, teacher_spec=None, features: int = 64,
                 frequency: float = 2.0) -> Dataset:
    """The data set ``name`` (see module doc) with ``n_train`` training and ``n_test`` test points."""
    if name not in DATASETS:
        raise ParameterError("dataset", name, ", ".join(repr(d) for d in DATASETS))
    n_train = check_int("n_train", n_train, 1)
    n_test = check_int("n_test", n_test, 0)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ParameterError("seed", seed, "an integer >= 0")
    noise = check_nonnegative("noise", noise)
    rng = np.random.default_rng([int(seed), DATASETS.index(name)])
    N = n_train + n_test
    if name == "digits":
        return _digits(n_train, n_test, rng)
    input_dim = check_int("input_dim", input_dim, 1)
    output_dim = check_int("output_dim", output_dim, 1)
    x = sphere(rng, N, input_dim)
    meta = {"seed": int(seed), "noise": noise}
    if name == "teacher":
        from .core.spec import MLPSpec
        from .ensemble.sampler import sample_preactivations
        if teacher_spec is None:
            from .theory.criticality import critical_spec
            teacher_spec = critical_spec("relu", 3, 256, input_dim, output_width=output_dim)
        if not isinstance(teacher_spec, MLPSpec) or teacher_spec.input_dim != input_dim:
            raise ParameterError("teacher_spec", teacher_spec, f"an MLPSpec with input_dim = {input_dim}")
        z = sample_preactivations(teacher_spec, x, 2, seed=int(seed), method="weights",
                                  layers=(teacher_spec.depth,))[teacher_spec.depth]
        y = z[0].numpy().astype(np.float64)
        meta["teacher"] = teacher_spec.to_dict()
    elif name == "random_features":
        F = check_int("features", features, 1)
        w = rng.standard_normal((F, input_dim))
        phi = rng.uniform(0, 2 * math.pi, F)
        a = rng.standard_normal((F, output_dim))
        y = np.cos(x @ w.T / math.sqrt(input_dim) + phi) @ a * math.sqrt(2.0 / F)
        meta["features"] = F
    else:  # sine_sphere
        om = check_positive("frequency", frequency)
        u = rng.standard_normal((input_dim, output_dim))
        u /= np.linalg.norm(u, axis=0, keepdims=True)
        y = np.sin(om * x @ u / math.sqrt(input_dim))
        meta["frequency"] = om
    if noise > 0:
        y = y + math.sqrt(noise) * rng.standard_normal(y.shape)
    return _split(name, x, y, n_train, meta)


def _digits(n_train: int, n_test: int, rng: np.random.Generator) -> Dataset:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ParameterError("dataset", "digits", "'teacher', 'random_features' or 'sine_sphere' "
                             "(the 'digits' data ship with scikit-learn, which is not installed: "
                             "pip install scikit-learn)") from None
    d = load_digits()
    X, lab = d.data.astype(np.float64), d.target
    if n_train + n_test > len(X):
        raise ParameterError("n_train + n_test", n_train + n_test, f"<= {len(X)} (size of the digits data)")
    perm = rng.permutation(len(X))[: n_train + n_test]
    X = X[perm] - X.mean(axis=0)
    X *= math.sqrt(X.shape[1]) / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    y = np.eye(10)[lab[perm]] - 0.1
    return _split("digits", X, y, n_train, {"source": "sklearn.datasets.load_digits", "classes": 10})
