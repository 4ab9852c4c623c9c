"""A minimal, independent Monte-Carlo sampler for tests of the theory (single input).

Given layer l's activations, z^(l+1)_i | layer l ~ N(0, C_b + C_W Σ_j σ(z_j)²/n_l) independently
over i — exact sampling of the network ensemble without materialising weights."""
import numpy as np
import torch


def sample_single_input(spec, x, M, seed, chunk=20000):
    """Per-layer arrays z[l] of shape (M, n_l) for one input x (float64)."""
    g = torch.Generator().manual_seed(seed)
    outs = [[] for _ in range(spec.depth)]
    k1 = spec.C_b[0] + spec.C_W[0] * float(np.dot(x, x)) / spec.input_dim
    for s in range(0, M, chunk):
        m = min(chunk, M - s)
        z = torch.randn(m, spec.width(1), generator=g, dtype=torch.float64) * np.sqrt(k1)
        outs[0].append(z)
        for l in range(1, spec.depth):
            sig = spec.activation.fn(z)
            G = spec.C_b[l] + spec.C_W[l] * (sig**2).mean(1, keepdim=True)
            y = torch.randn(m, spec.width(l + 1), generator=g, dtype=torch.float64) * G.sqrt()
            if spec.is_residual_layer(l + 1):
                xi, ga = spec.residual
                y = xi * z + ga * y
            z = y
            outs[l].append(z)
    return [torch.cat(o).numpy() for o in outs]


def vnorm_estimate(z):
    """V/(n_{l-1}K²) from cross-neuron moments, with a delta-method standard error over networks."""
    M, n = z.shape
    z2 = z**2
    k = z2.mean(1)
    cross = (z2.sum(1) ** 2 - (z2**2).sum(1)) / (n * (n - 1))
    a, b = cross.mean(), k.mean()
    est = a / b**2 - 1
    grad = np.array([1 / b**2, -2 * a / b**3])
    cov = np.cov(np.stack([cross, k])) / M
    return est, float(np.sqrt(grad @ cov @ grad))


def extrapolate(ns, ys, ses):
    """Weighted least squares y = a + b/n; returns (a, SE(a))."""
    X = np.stack([np.ones(len(ns)), 1 / np.asarray(ns, float)], 1)
    W = np.diag(1 / np.asarray(ses) ** 2)
    C = np.linalg.inv(X.T @ W @ X)
    coef = C @ X.T @ W @ np.asarray(ys)
    return float(coef[0]), float(np.sqrt(C[0, 0]))


def sample_multi_input(spec, x, M, seed, chunk=20000):
    """Per-layer arrays of shape (M, n_l, N) for N inputs (exact conditional Gaussian sampling)."""
    g = torch.Generator().manual_seed(seed)
    X = torch.as_tensor(np.asarray(x, dtype=np.float64))
    N = X.shape[0]
    eye = 1e-12 * torch.eye(N, dtype=torch.float64)
    outs = [[] for _ in range(spec.depth)]
    G1 = spec.C_b[0] + spec.C_W[0] * X @ X.T / spec.input_dim
    L1 = torch.linalg.cholesky(G1 + eye)
    for s in range(0, M, chunk):
        m = min(chunk, M - s)
        z = torch.randn(m, spec.width(1), N, generator=g, dtype=torch.float64) @ L1.T
        outs[0].append(z)
        for l in range(1, spec.depth):
            sig = spec.activation.fn(z)
            G = spec.C_b[l] + spec.C_W[l] * torch.einsum("mia,mib->mab", sig, sig) / z.shape[1]
            Lc = torch.linalg.cholesky(G + eye)
            z = torch.einsum("mab,mib->mia", Lc, torch.randn(m, spec.width(l + 1), N, generator=g, dtype=torch.float64))
            outs[l].append(z)
    return [torch.cat(o).numpy() for o in outs]
