"""The RNG layout of network ensembles (shared by :class:`~deepeft.nets.BatchedMLP` and the ensemble sampler).

Networks are grouped in fixed *RNG blocks* of ``rng_block`` consecutive networks; block b draws
from its own generator seeded by ``SeedSequence([seed, b])``, one tensor after another.  A chunk
of networks is made of whole blocks, so how an ensemble is chunked never changes a network.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch


def block_seed(seed: int, block: int) -> int:
    """Seed of RNG block ``block`` (independent, well-mixed streams via numpy's SeedSequence)."""
    return int(np.random.SeedSequence([int(seed), int(block)]).generate_state(1, np.uint64)[0] & ((1 << 63) - 1))


def default_rng_block(device: torch.device, M: int) -> int:
    """Networks per RNG block: up to 16 (CPU) / 128 (CUDA), and small enough that an ensemble has
    at least 32 blocks (the jackknife batches are made of whole blocks)."""
    cap = 128 if device.type == "cuda" else 16
    return max(1, min(cap, M // 32))


_POOL: tuple[int, ThreadPoolExecutor] | None = None


def _forget_pool() -> None:
    """A forked child has none of the parent's threads: it must build its own pool."""
    global _POOL
    _POOL = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _fill_pool() -> ThreadPoolExecutor | None:
    """Threads for filling RNG blocks in parallel on CPU (as many as torch's intra-op threads)."""
    global _POOL
    k = torch.get_num_threads()
    if k < 2:
        return None
    if _POOL is None or _POOL[0] != k:
        if _POOL is not None:
            _POOL[1].shutdown(wait=False)
        _POOL = (k, ThreadPoolExecutor(max_workers=k, thread_name_prefix="deepeft-rng"))
    return _POOL[1]


class BlockRNG:
    """Generators of networks [start, stop) of an ensemble of M and standard normals drawn from them."""

    def __init__(self, seed: int, M: int, rng_block: int, start: int, stop: int, *, device: torch.device,
                 dtype: torch.dtype):
        self.device, self.dtype = device, dtype
        self.gens: list[tuple[torch.Generator, int]] = []
        for blk in range(start // rng_block, -(-stop // rng_block)):
            g = torch.Generator(device=device)
            g.manual_seed(block_seed(seed, blk))
            self.gens.append((g, min(rng_block, M - blk * rng_block)))

    def randn(self, shape, out: torch.Tensor | None = None) -> torch.Tensor:
        """Standard normals (M_c, *shape): block b's slice is filled from block b's generator
        (``normal_`` on a contiguous slice draws exactly what ``randn`` of that size draws).

        On CPU torch's generator is single-threaded, so independent blocks are filled from a small
        thread pool (torch releases the GIL): the numbers are those of the sequential loop."""
        gens = self.gens
        total = sum(size for _, size in gens)
        if out is None or tuple(out.shape) != (total, *shape):
            out = torch.empty((total, *shape), device=self.device, dtype=self.dtype)
        starts = np.cumsum([0] + [size for _, size in gens[:-1]]).tolist()
        jobs = [(out[a:a + size], g) for a, (g, size) in zip(starts, gens)]
        pool = _fill_pool() if self.device.type == "cpu" and len(jobs) > 1 and out.numel() >= 1 << 16 else None
        if pool is None:
            for view, g in jobs:
                view.normal_(generator=g)
        else:
            list(pool.map(lambda job: job[0].normal_(generator=job[1]), jobs))
        return out
