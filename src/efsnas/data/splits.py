"""Seeded splits of a training set into a training part and a held-out part, and subsets.

Each function maps labels (or a size) and a seed to index tensors; the same seed gives the
same split on every machine and rank. Index order is random, not sorted, so the first k
held-out images are a fair sample of all classes (evaluation may cap the count that way).
"""

from __future__ import annotations

import torch

from efsnas.data.order import generator
from efsnas.errors import DataError

__all__ = ["half_split", "per_class_split", "stratified_subset"]


def half_split(n: int, *, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """NAS-Bench-201's split: a random half for training, the other half held out.

    The permutation comes from `torch.Generator().manual_seed(seed)`; with an odd count the
    held-out half gets the extra image. CIFAR-10: 25,000 / 25,000."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[: n // 2], perm[n // 2:]


def per_class_split(labels: torch.Tensor, n: int, *, seed: int,
                    what: str = "the training set") -> tuple[torch.Tensor, torch.Tensor]:
    """Hold out `n` random images of every class (the ImageNet recipe: 50); train on the rest."""
    labels = torch.as_tensor(labels, dtype=torch.int64)
    if n < 1:
        raise DataError(f"heldout_per_class must be at least 1, got {n}")
    gen = generator("per_class", seed)
    train, held = [], []
    for c in torch.unique(labels).tolist():
        members = torch.nonzero(labels == c).flatten()
        if len(members) <= n:
            raise DataError(f"class {c} of {what} has {len(members)} images: too few to hold "
                            f"out {n} per class and still train on it")
        members = members[torch.randperm(len(members), generator=gen)]
        held.append(members[:n])
        train.append(members[n:])
    train_idx, held_idx = torch.cat(train), torch.cat(held)
    # shuffle so that neither part is ordered by class
    return (train_idx[torch.randperm(len(train_idx), generator=gen)],
            held_idx[torch.randperm(len(held_idx), generator=gen)])


def stratified_subset(labels: torch.Tensor, k: int, *, seed: int) -> torch.Tensor:
    """`k` random indices with each class's share as in `labels` (largest remainders first)."""
    labels = torch.as_tensor(labels, dtype=torch.int64)
    n = len(labels)
    if k >= n:
        return torch.arange(n)
    gen = generator("subset", seed)
    classes, counts = torch.unique(labels, return_counts=True)
    exact = counts.double() * k / n
    take = exact.floor().long()
    short = k - int(take.sum())
    if short:
        # the classes with the largest fractional parts get one more (ties: lower class first)
        order = torch.argsort(-(exact - take), stable=True)
        take[order[:short]] += 1
    picked = []
    for c, t in zip(classes.tolist(), take.tolist()):
        members = torch.nonzero(labels == c).flatten()
        picked.append(members[torch.randperm(len(members), generator=gen)[:t]])
    out = torch.cat(picked)
    return out[torch.randperm(len(out), generator=gen)]
