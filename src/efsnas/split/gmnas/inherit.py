"""Children inherit their parent's weights when a supernet is split."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence

import torch.nn.functional as F

from efsnas.errors import UsageError
from efsnas.split.gmnas.decisions import GMNASSplit, SplitDecision
from efsnas.split.gmnas.partition import choose_split
from efsnas.supernets.fewshot import FewShotSupernets

# ---- children inherit the parent's weights --------------------------------------------------


def source_indices(decision: SplitDecision, num_subspaces: int) -> list[int]:
    """For each supernet after the split, the index of the supernet it starts from."""
    g = len(decision.groups)
    return [j if j < decision.parent else decision.parent if j < decision.parent + g else j - g + 1
            for j in range(num_subspaces + g - 1)]


def split_supernets(supernets: FewShotSupernets, decision: SplitDecision,
                    criterion: GMNASSplit) -> FewShotSupernets:
    """New supernets with the parent replaced by its children, each starting from the parent's
    weights (the others carried over). Appends `decision` to `criterion`, so its JSON is the
    learned split. Parameters are new objects: rebuild the optimizer."""
    if supernets.structure != "separate":
        raise UsageError("GM-NAS splits need separate supernets (structure: separate)")
    space = supernets.space
    if len(criterion.subspaces(space)) != len(supernets):
        raise UsageError(f"the criterion has {len(criterion.subspaces(space))} subspaces but there "
                         f"are {len(supernets)} supernets: split them with this criterion")
    if supernets.split.width_divisor != criterion.width_divisor:
        raise UsageError(f"supernets use width divisor {supernets.split.width_divisor}, the "
                         f"criterion {criterion.width_divisor}")
    if supernets.split.criterion == criterion.name and (
            [s.spec for s in supernets.split.subspaces]
            != [s.spec for s in criterion.subspaces(space)]):
        raise UsageError("the supernets' subspaces differ from the criterion's decisions")
    grown = GMNASSplit(decisions=[*criterion.decisions, decision],
                       width_divisor=criterion.width_divisor)
    new = FewShotSupernets(grown.split(space), structure="separate")
    ref = next(supernets.parameters(), None)
    if ref is not None:
        new.to(ref.device)
    for j, src in enumerate(source_indices(decision, len(supernets))):
        new.supernet(j).load_state_dict(supernets.supernet(src).state_dict())
    criterion.decisions = grown.decisions
    return new


def split_each(supernets: FewShotSupernets, criterion: GMNASSplit, batches: Iterable, *,
               num_groups: int = 2, samples: int = 4, rng: random.Random,
               positions: Sequence[int] | None = None, balanced: bool = False,
               loss_fn: Callable = F.cross_entropy) -> tuple[FewShotSupernets, list[SplitDecision]]:
    """Split every current subspace once (GM-NAS's second split point), all decided on the current
    weights, applied from the last subspace to the first so parent indices stay valid; returns the
    decisions in the order applied (the order `criterion.decisions` records them)."""
    batches = list(batches)
    subs = criterion.subspaces(supernets.space)
    decisions = [choose_split(supernets.supernet(k), supernets.space, subs[k], batches,
                              num_groups=num_groups, samples=samples, positions=positions, rng=rng,
                              parent=k, balanced=balanced, loss_fn=loss_fn)
                 for k in range(len(subs))]
    decisions.reverse()
    for d in decisions:
        supernets = split_supernets(supernets, d, criterion)
    return supernets, decisions
