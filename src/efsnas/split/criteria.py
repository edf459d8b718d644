"""The interchangeable criteria: counting nonlinearities (this method), FS-NAS, one-shot.

GM-NAS, which needs a warmed-up supernet, lives in efsnas.split.gmnas.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from efsnas.api.search_space import SearchSpace
from efsnas.api.split import Split, SplitCriterion, Subspace
from efsnas.errors import UsageError
from efsnas.registry import register_criterion


def parse_groups(text: str) -> tuple[tuple[int, ...], ...]:
    """'0,1/2/3' -> ((0, 1), (2,), (3,)); 'rest' is allowed as one group (see NonlinearityCountSplit)."""
    groups = []
    for part in text.split("/"):
        part = part.strip()
        if part == "rest":
            groups.append(("rest",))
            continue
        try:
            groups.append(tuple(int(x) for x in part.split(",") if x.strip()))
        except ValueError:
            raise UsageError(
                f"bad grouping {text!r}: write counts separated by ',' and groups by '/', "
                "e.g. '0,1/2/3' or '34/36/38/40/42/rest'"
            ) from None
    return tuple(groups)


class NonlinearityCountSplit(SplitCriterion):
    """Subspaces of subnets with the same number of nonlinear functions (this method).

    `groups` maps counts to subspaces; the single group ("rest",) takes every count not listed.
    """

    name = "nonlinearity"
    compare_sampler = "sbs"
    label = "this method (count split, narrow, SBS)"
    compare_variants = {"nosbs": ("uniform", "this method without SBS (uniform sampling)")}
    structures = ("separate", "shared_head", "shared_trunk", "shared_prefix")

    @classmethod
    def from_config(cls, split_config) -> NonlinearityCountSplit:
        return cls(groups=split_config.groups, width_divisor=split_config.width_divisor)

    def __init__(self, *, groups: Sequence[Sequence[int | str]] | str | None = None,
                 width_divisor: int | None = None, allow_empty: bool = False) -> None:
        self.groups = parse_groups(groups) if isinstance(groups, str) else groups
        self.width_divisor = width_divisor
        self.allow_empty = allow_empty

    def default_structure(self, space: SearchSpace) -> str:
        return space.default_structure  # the space knows how its count subspaces share weights

    def resolve_groups(self, space: SearchSpace) -> list[tuple[int, ...]]:
        """The grouping of counts into subspaces for `space` (the configured one or the space's
        default), with a 'rest' group filled in; raises UsageError when a count is unknown,
        repeated or left out."""
        groups = self.groups if self.groups is not None else space.default_groups
        possible = set(space.possible_counts)
        explicit = [tuple(g) for g in groups if tuple(g) != ("rest",)]
        n_rest = sum(1 for g in groups if tuple(g) == ("rest",))
        if n_rest > 1:
            raise UsageError("grouping may hold 'rest' at most once")
        seen: dict[int, int] = {}
        for k, g in enumerate(explicit):
            if not g:
                raise UsageError(f"group {k} of the grouping is empty")
            for c in g:
                if not isinstance(c, int):
                    raise UsageError(f"group {k}: count {c!r} is not an integer")
                if c not in possible:
                    raise UsageError(
                        f"count {c} cannot occur in the {space.name} space; possible counts: "
                        f"{sorted(possible)}"
                    )
                if c in seen:
                    raise UsageError(f"count {c} is in groups {seen[c]} and {k}; use it once")
                seen[c] = k
        rest = tuple(sorted(possible - set(seen)))
        if n_rest:
            if not rest and not self.allow_empty:
                raise UsageError("the 'rest' group is empty: every count is already listed")
            explicit.append(rest)
        elif rest:
            raise UsageError(
                f"counts {list(rest)} of the {space.name} space are in no group; add them or a "
                "'rest' group"
            )
        return explicit

    def split(self, space: SearchSpace) -> Split:
        groups = self.resolve_groups(space)
        subspaces = []
        for g in groups:
            members = frozenset(g)
            subspaces.append(Subspace(
                name="count=" + ",".join(map(str, g)),
                contains=lambda s, m=members: space.nonlinearity_count(s) in m,
                spec={"counts": list(g)},
            ))
        wd = self.width_divisor if self.width_divisor is not None else space.default_width_divisor
        split = Split(space, subspaces, criterion=self.name, width_divisor=wd)
        if not self.allow_empty and space.enumerable:
            sizes = [len(m) for m in split.members()]
            empty = [subspaces[k].name for k, n in enumerate(sizes) if n == 0]
            if empty:
                raise UsageError(f"empty subspace(s) {', '.join(empty)}: merge those counts")
        return split


class EdgeOperationSplit(SplitCriterion):
    """FS-NAS: one subspace per choice at one position (an edge or a layer), full width."""

    name = "fsnas"
    label = "FS-NAS (one position's choices, full width)"
    config_fields = ("fsnas_position", "fsnas_transfer", "fsnas_warmup_epochs")

    @classmethod
    def from_config(cls, split_config) -> EdgeOperationSplit:
        return cls(position=split_config.fsnas_position,
                   width_divisor=split_config.width_divisor or 1,
                   warmup_epochs=(split_config.fsnas_warmup_epochs
                                  if split_config.fsnas_transfer else 0))

    def __init__(self, *, position: int = 0, width_divisor: int = 1,
                 warmup_epochs: int = 0) -> None:
        """`warmup_epochs` > 0: transfer, one-shot training for that many epochs (capped at one
        less than the run's), then every sub-supernet starts from the one-shot weights."""
        self.position = position
        self.width_divisor = width_divisor
        self.warmup_epochs = warmup_epochs

    def split_epochs(self, epochs: int) -> list[int]:
        warm = min(self.warmup_epochs, epochs - 1)
        return [warm] if warm > 0 else []

    def initial_split(self, space: SearchSpace) -> Split:
        if not self.warmup_epochs:
            return self.split(space)
        return OneShotSplit(width_divisor=self.width_divisor).split(space)

    def refine(self, supernets, batches: list, rng: random.Random):
        from efsnas.supernets import FewShotSupernets

        children = FewShotSupernets(self.split(supernets.space))
        state = supernets.supernet(0).state_dict()
        for k in range(len(children)):
            children.supernet(k).load_state_dict(state)
        return children

    def stage_sizes(self, space: SearchSpace, epochs: int) -> list[int]:
        return [1] * len(self.split_epochs(epochs)) + [len(self.split(space))]

    def stretched_schedule(self, split_config, factor: float) -> dict:
        return {"split.fsnas_warmup_epochs": round(split_config.fsnas_warmup_epochs * factor)}

    def published_schedule(self, split_config, epochs: int, space: SearchSpace,
                           draws_per_step: int) -> dict:
        """The one-shot warm-up as it is, then K times the rest."""
        warm = (self.split_epochs(epochs) or [0])[0]
        k = len(self.split(space))
        return {"train.epochs": warm + (epochs - warm) * k}

    def split(self, space: SearchSpace) -> Split:
        if not 0 <= self.position < len(space.choices):
            raise UsageError(
                f"FS-NAS position {self.position} outside 0..{len(space.choices) - 1}"
            )
        p = self.position
        subspaces = [
            Subspace(name=f"pos{p}={c}", contains=lambda s, c=c: s[p] == c,
                     spec={"position": p, "choice": c})
            for c in range(space.choices[p])
        ]
        split = Split(space, subspaces, criterion=self.name, width_divisor=self.width_divisor)
        # Drop choices with no valid subnet (e.g. an identity never allowed at a stage's first
        # layer): exactly where the space can be listed, else by trying random completions.
        if space.enumerable:
            keep = [s for s, m in zip(subspaces, split.members()) if m]
        else:
            keep = [s for s in subspaces if _choice_possible(space, p, s.spec["choice"])]
        if len(keep) != len(subspaces):
            split = Split(space, keep, criterion=self.name, width_divisor=self.width_divisor)
        return split


def _choice_possible(space: SearchSpace, position: int, choice: int, tries: int = 256) -> bool:
    """Whether some valid subnet takes `choice` at `position`: valid random subnets with that
    one position changed (fixed seed, so the split is the same on every run)."""
    rng = random.Random(0)
    for _ in range(tries):
        s = list(space.sample(rng))
        s[position] = choice
        if space.is_valid(tuple(s)):
            return True
    return False


class OneShotSplit(SplitCriterion):
    """A single subspace: the whole space in one full-width supernet (SPOS)."""

    name = "oneshot"
    compare_sampler = "uniform"
    label = "one-shot (K=1, full width, uniform)"

    def __init__(self, *, width_divisor: int = 1) -> None:
        self.width_divisor = width_divisor

    def split(self, space: SearchSpace) -> Split:
        return Split(space, [Subspace("all", lambda s: True, {"all": True})],
                     criterion=self.name, width_divisor=self.width_divisor)


register_criterion("nonlinearity")(NonlinearityCountSplit)
register_criterion("fsnas")(EdgeOperationSplit)
register_criterion("oneshot")(OneShotSplit)
