"""The cut: partitions of a position's choices by gradient similarity, and the split decision."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from efsnas.api.search_space import SearchSpace
from efsnas.api.split import Subspace
from efsnas.errors import UsageError
from efsnas.split.gmnas.decisions import SplitDecision, _allowed, _assign
from efsnas.split.gmnas.gradients import _Draws, _similarity

MAX_PARTITION_CHOICES = 10  # exhaustive cuts: at most S(10, 5) = 42,525 partitions


# ---- the cut ------------------------------------------------------------------------------


def _partitions(n: int, k: int, balanced: bool):
    """Restricted growth strings of n items in exactly k groups, in lexicographic order."""
    labels = [0] * n

    def rec(i: int, used: int):
        if n - i < k - used:
            return
        if i == n:
            if used == k:
                sizes = [labels.count(g) for g in range(k)]
                if not balanced or max(sizes) - min(sizes) <= 1:
                    yield list(labels)
            return
        for g in range(min(used + 1, k)):
            labels[i] = g
            yield from rec(i + 1, max(used, g + 1))

    if n:
        yield from rec(1, 1)


def best_partition(similarity: torch.Tensor | Sequence[Sequence[float]], num_groups: int, *,
                   balanced: bool = False) -> tuple[list[list[int]], float]:
    """Groups of indices (each sorted, ordered by first member) minimising the total similarity
    between members of different groups, and that total. Exact: every partition into exactly
    `num_groups` non-empty groups is tried; ties go to the first in lexicographic label order."""
    sim = torch.as_tensor(similarity, dtype=torch.float64).tolist()
    n = len(sim)
    if not 1 <= num_groups <= n:
        raise UsageError(f"cannot cut {n} choices into {num_groups} non-empty groups")
    if n > MAX_PARTITION_CHOICES:
        raise UsageError(f"exhaustive cut supports at most {MAX_PARTITION_CHOICES} choices, got {n}")
    pairs = [(i, j, (sim[i][j] + sim[j][i]) / 2) for i in range(n) for j in range(i + 1, n)]
    best, best_cut = None, float("inf")
    for labels in _partitions(n, num_groups, balanced):
        cut = sum(w for i, j, w in pairs if labels[i] != labels[j])
        if cut < best_cut - 1e-12:
            best, best_cut = labels, cut
    groups = [[i for i in range(n) if best[i] == g] for g in range(num_groups)]
    return groups, best_cut


def _cross_pairs(groups: list[list[int]]) -> int:
    n = sum(len(g) for g in groups)
    return (n * n - sum(len(g) ** 2 for g in groups)) // 2


def choose_split(supernet: nn.Module, space: SearchSpace, subspace: Subspace, batches: Iterable, *,
                 num_groups: int = 2, samples: int = 4, positions: Sequence[int] | None = None,
                 rng: random.Random, parent: int = 0, balanced: bool = False,
                 loss_fn: Callable = F.cross_entropy) -> SplitDecision:
    """Gradient-match every candidate position of `subspace` and pick the one whose best cut has
    the lowest mean cross-group similarity (ties: lowest position). Deterministic given `rng`.

    Candidates: `positions`, or by default every position the subspace has not split yet (as in
    the authors' code) with at least `num_groups` valid choices."""
    t0 = time.perf_counter()
    batches = list(batches)
    draws = _Draws(space, subspace)
    for p in positions or ():
        if not 0 <= p < len(space.choices):
            raise UsageError(f"position {p} outside 0..{len(space.choices) - 1}")
    if positions is None:
        # As in the authors' code: positions not split yet; once all are, any with choices left.
        splittable = [p for p in range(len(space.choices))
                      if len(draws.valid_choices(p)) >= num_groups]
        done = set(_assign(subspace))
        positions = [p for p in splittable if p not in done] or splittable
    best: tuple | None = None
    scores: dict[int, float] = {}
    for p in positions:
        if len(draws.valid_choices(p)) < num_groups:
            continue  # too few valid choices left to cut
        choices, sim = _similarity(supernet, draws, p, batches, samples=samples, rng=rng,
                                   loss_fn=loss_fn)
        idx_groups, cut = best_partition(sim, num_groups, balanced=balanced)
        scores[p] = cut / _cross_pairs(idx_groups)
        if best is None or scores[p] < best[1] - 1e-12:
            best = (p, scores[p], choices, sim, [[choices[i] for i in g] for g in idx_groups])
    if best is None:
        raise UsageError(f"no position of subspace {subspace.name} has {num_groups} valid choices "
                         "left to split")
    p, score, choices, sim, groups = best
    groups[0] = sorted(groups[0] + [c for c in _allowed(space, subspace, p) if c not in choices])
    return SplitDecision(parent=parent, position=p, groups=groups, score=score,
                         scores_per_position=scores, similarity=sim.tolist(),
                         seconds=time.perf_counter() - t0, choices=choices)
