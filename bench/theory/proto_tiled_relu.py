"""Prototype (not part of deepeft): what does a cache-tiled, symmetric ReLU NNGP+NTK layer loop cost?

deepeft.theory.infinite_kernels applies ~25 whole-matrix torch ops per layer (each streams N² float64
through memory); XLA fuses NT's layer into a pass or two.  This script times, on the same inputs,
(a) deepeft.theory.infinite_kernels and (b) the same recursion evaluated tile by tile (T×T tiles,
upper triangle only, mirrored), with preallocated scratch, so every op works in cache.

    python bench/theory/proto_tiled_relu.py --n 4000 --depth 10 --tile 256
"""
import argparse
import math
import os
import time

import numpy as np
import torch


def tiled_relu(x, depth, cw, cb, tile):
    """ReLU (a₊=1, a₋=0) NNGP and NTK, λ_W = C_W, λ_b = C_b, x2 = x1."""
    N, n0 = x.shape
    X = torch.as_tensor(x, dtype=torch.float64)
    K = (X @ X.T).mul_(cw / n0).add_(cb)
    Th = K.clone()
    kd = K.diagonal().clone()
    td = Th.diagonal().clone()
    tiles = [(i, min(i + tile, N)) for i in range(0, N, tile)]
    buf = [torch.empty(tile, tile, dtype=torch.float64) for _ in range(3)]
    c = 1 / (2 * math.pi)
    for _ in range(1, depth):
        s = kd.sqrt()
        inv = 1 / s
        for a, (i0, i1) in enumerate(tiles):
            for (j0, j1) in tiles[a:]:
                k = K[i0:i1, j0:j1]
                th = Th[i0:i1, j0:j1]
                m, n = i1 - i0, j1 - j0
                rho, t1, t2 = (b[:m, :n] for b in buf)
                torch.mul(k, inv[i0:i1, None], out=rho).mul_(inv[None, j0:j1]).clamp_(-1.0, 1.0)
                torch.arccos(rho, out=t1)                       # ψ
                torch.mul(rho, rho, out=t2).neg_().add_(1.0).clamp_(min=0.0).sqrt_()  # sin ψ
                t1.neg_().add_(math.pi)                          # π − ψ
                t2.addcmul_(t1, rho)                             # sin ψ + (π−ψ)ρ
                t2.mul_(s[i0:i1, None]).mul_(s[None, j0:j1])     # G·2π
                # Θ ← cw·Θ·(π−ψ)/2π + cw·G + cb ;  K ← cw·G + cb   (G = t2/2π)
                th.mul_(t1).add_(t2).mul_(cw * c).add_(cb)
                k.copy_(t2).mul_(cw * c).add_(cb)
                if j0 != i0:
                    K[j0:j1, i0:i1].copy_(k.T)
                    Th[j0:j1, i0:i1].copy_(th.T)
        g = kd / 2
        td = cb + cw * g + cw * 0.5 * td
        kd = cb + cw * g
        K.diagonal().copy_(kd)
        Th.diagonal().copy_(td)
    return K.numpy(), Th.numpy()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--depth", type=int, default=10)
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from deepeft.core.spec import MLPSpec
    from deepeft.theory import infinite_kernels
    x = np.random.default_rng(0).standard_normal((a.n, 32))
    cw, cb = 2.0, 0.01
    spec = MLPSpec.make("relu", depth=a.depth, width=512, input_dim=32, C_W=cw, C_b=cb)

    def med(f):
        f()
        ts = []
        for _ in range(a.repeats):
            t = time.perf_counter()
            out = f()
            ts.append(time.perf_counter() - t)
        return float(np.median(ts)), out
    t_de, k_de = med(lambda: infinite_kernels(spec, x))
    t_ti, (K, Th) = med(lambda: tiled_relu(x, a.depth, cw, cb, a.tile))
    rel = lambda A, B: float(np.max(np.abs(A - B) / np.sqrt(np.outer(np.diag(B), np.diag(B)))))  # noqa: E731
    print(f"N={a.n} depth={a.depth} threads={a.threads} load={os.getloadavg()[0]:.1f}: infinite_kernels {t_de:.2f} s, "
          f"tiled prototype (tile {a.tile}) {t_ti:.2f} s; max scaled diff NNGP {rel(K, k_de.nngp):.1e}, "
          f"NTK {rel(Th, k_de.ntk):.1e}")


if __name__ == "__main__":
    main()
