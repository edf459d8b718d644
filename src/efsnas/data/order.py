"""The order in which a data set is visited: a pure function of (seed, epoch, rank).

Nothing here touches a global RNG, so a resumed run, another rank, or a rerun sees exactly the
same batches (the trainer skips the first batches of an epoch it resumes in the middle of).
"""

from __future__ import annotations

import hashlib

import torch

__all__ = ["derive_seed", "generator", "epoch_order", "batch_slices"]


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any tuple of labels and integers, stable across Python versions.

    Used instead of `hash()` (salted per process) and instead of `seed + epoch` (which makes
    seed 0 epoch 1 the same stream as seed 1 epoch 0)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def generator(*parts: object) -> torch.Generator:
    """A CPU generator seeded from `parts`: the same numbers whatever the training device."""
    return torch.Generator().manual_seed(derive_seed(*parts))


def epoch_order(n: int, *, shuffle: bool, seed: int, epoch: int, rank: int = 0,
                world_size: int = 1, drop_last: bool = False) -> torch.Tensor:
    """Indices (int64, CPU) this rank visits in this epoch.

    With `world_size > 1` the epoch's permutation is cut into `world_size` disjoint shards of
    equal size, as torch's DistributedSampler does: the tail is dropped (`drop_last`) or padded
    with the first indices again, so every rank runs the same number of steps."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size); got rank={rank}, "
                         f"world_size={world_size}")
    if shuffle:
        # one permutation per epoch, identical on every rank, so the shards never overlap
        order = torch.randperm(n, generator=generator("order", seed, epoch))
    else:
        order = torch.arange(n)
    if world_size > 1 and n > 0:
        if drop_last:
            order = order[: n - n % world_size]
        elif n % world_size:
            pad = world_size - n % world_size
            order = torch.cat([order, order.repeat(pad // n + 1)[:pad]])
        order = order[rank::world_size]
    return order


def batch_slices(n: int, batch_size: int, *, drop_last: bool) -> list[slice]:
    """Consecutive batch slices over `n` items (the last one short unless `drop_last`)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    stop = n - n % batch_size if drop_last else n
    return [slice(i, min(i + batch_size, n)) for i in range(0, stop, batch_size)]
