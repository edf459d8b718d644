"""Subspaces and splits: how a search space is cut into the supernets' domains."""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

from efsnas.api.search_space import SearchSpace, Subnet
from efsnas.errors import UsageError


@dataclass(frozen=True)
class Subspace:
    """A named region of a space, defined by a predicate over subnets."""

    name: str
    contains: Callable[[Subnet], bool] = field(repr=False, compare=False)
    spec: dict = field(default_factory=dict, compare=False)  # JSON-ready definition


class Split:
    """K disjoint subspaces covering every valid subnet of a space, plus routing."""

    def __init__(self, space: SearchSpace, subspaces: list[Subspace], *, criterion: str,
                 width_divisor: int = 1) -> None:
        if not subspaces:
            raise UsageError("a split needs at least one subspace")
        if width_divisor < 1:
            raise UsageError(f"width divisor must be >= 1, got {width_divisor}")
        self.space = space
        self.subspaces = list(subspaces)
        self.criterion = criterion
        self.width_divisor = width_divisor
        self._members: list[list[Subnet]] | None = None

    def __len__(self) -> int:
        return len(self.subspaces)

    def route(self, subnet: Subnet) -> int:
        """Index of the subspace (and supernet) a subnet belongs to."""
        for k, sub in enumerate(self.subspaces):
            if sub.contains(subnet):
                return k
        raise UsageError(f"{self.space.format(subnet)} is in no subspace of the {self.criterion} split")

    def members(self) -> list[list[Subnet]]:
        """Valid subnets of each subspace (enumerable spaces only; cached)."""
        if self._members is None:
            groups: list[list[Subnet]] = [[] for _ in self.subspaces]
            for s in self.space.enumerate():
                if self.space.is_valid(s):
                    groups[self.route(s)].append(s)
            self._members = groups
        return self._members

    def sample(self, k: int, rng: random.Random) -> Subnet:
        """A uniformly random valid subnet of subspace k."""
        if self.space.enumerable:
            pool = self.members()[k]
            if not pool:
                raise UsageError(f"subspace {self.subspaces[k].name} of the split is empty")
            return pool[rng.randrange(len(pool))]
        return self.space.sample_where(self.subspaces[k].contains, rng)

    def validate(self, *, allow_empty: bool = False) -> None:
        """Every valid subnet in exactly one subspace; no empty subspace unless allowed."""
        if not self.space.enumerable:
            return
        sizes = [0] * len(self)
        for s in self.space.enumerate():
            if not self.space.is_valid(s):
                continue
            hits = [k for k, sub in enumerate(self.subspaces) if sub.contains(s)]
            if len(hits) != 1:
                raise UsageError(
                    f"{self.space.format(s)} is in {len(hits)} subspaces of the {self.criterion} "
                    "split; every subnet must be in exactly one"
                )
            sizes[hits[0]] += 1
        empty = [self.subspaces[k].name for k, n in enumerate(sizes) if n == 0]
        if empty and not allow_empty:
            raise UsageError(f"empty subspace(s) {', '.join(empty)} in the {self.criterion} split")

    def describe(self) -> dict:
        """Criterion, width divisor and subspaces, JSON-ready (stored with runs and checkpoints)."""
        return {
            "criterion": self.criterion,
            "width_divisor": self.width_divisor,
            "subspaces": [{"name": s.name, **s.spec} for s in self.subspaces],
        }


class SplitCriterion(ABC):
    """Turns a search space into a Split. Interchangeable: one-shot, FS-NAS, GM-NAS, counting.

    A *staged* criterion reaches its split during training: training starts from
    `initial_split`, and at each epoch of `split_epochs` the supernets are replaced by
    `refine(...)`, children inheriting their parent's weights (FS-NAS with transfer, GM-NAS).
    What it learns on the way is `state_dict()`, saved in the run folder and loaded back so a
    resumed or reopened run has the same split. Plain criteria keep the defaults below.
    """

    name: str = ""
    # How `efsnas compare` trains this criterion by default, and what its row is called.
    compare_sampler: str = "balanced"
    label: str = ""
    # More rows for `efsnas compare`: suffix -> (sampler, label), e.g. this method without SBS.
    compare_variants: dict[str, tuple[str, str]] = {}
    # Supernet structures this criterion's subspaces can share weights in (see supernets).
    structures: tuple[str, ...] = ("separate",)
    # The fields of the `split` config section that belong to this criterion alone (`groups`,
    # `structure` and `thresholds` are shared: supernets, reports and ground truth read them).
    config_fields: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, split_config) -> SplitCriterion:
        """The criterion a run's `split` config section describes (its own fields of it).
        Default: the width divisor, when the constructor takes one (full width unless set)."""
        import inspect

        if "width_divisor" in inspect.signature(cls).parameters:
            return cls(width_divisor=split_config.width_divisor or 1)
        return cls()

    @abstractmethod
    def split(self, space: SearchSpace) -> Split:
        """The split of `space` this criterion makes (one that learns its split: as learned so far)."""
        ...

    def default_structure(self, space: SearchSpace) -> str:
        """How this criterion's supernets share weights on `space` unless the config says
        otherwise."""
        return "separate"

    # ---- staged criteria -------------------------------------------------------------------
    def split_epochs(self, epochs: int) -> list[int]:
        """Epochs (increasing, within 1..epochs-1) after which the supernets are refined."""
        return []

    def initial_split(self, space: SearchSpace) -> Split:
        """The split the supernets start training with (before any split epoch). Default:
        `split`."""
        return self.split(space)

    def refine(self, supernets, batches: list, rng: random.Random):
        """The supernets after the next split epoch, inheriting the current weights."""
        raise NotImplementedError(f"the {self.name} criterion has no split epochs")

    def stage_sizes(self, space: SearchSpace, epochs: int) -> list[int]:
        """How many supernets train in each stage (one stage more than split epochs)."""
        return [len(self.split(space))]

    def published_schedule(self, split_config, epochs: int, space: SearchSpace,
                           draws_per_step: int) -> dict:
        """`efsnas compare --budget published`: config overrides that give every supernet as
        many updates as the whole schedule gives one supernet (the FS-NAS and GM-NAS papers
        train each sub-supernet for the full schedule). Here: one stage, lengthened by the
        supernets a step does not reach (none for SBS, which updates them all)."""
        k = len(self.split(space))
        return {} if draws_per_step >= k else {"train.epochs": epochs * k // draws_per_step}

    def stretched_schedule(self, split_config, factor: float) -> dict:
        """`efsnas compare --budget passes`: config overrides that keep the split epochs at the
        same fraction of a run `factor` times as long (none for a criterion without stages)."""
        return {}

    def recorded_split_seconds(self) -> float | None:
        """Wall time the split decisions took when they were made (replayed ones included), if
        the criterion records it; None: the time of `refine` itself is the cost."""
        return None

    def state_dict(self) -> dict:
        """What the criterion learned so far (its split decisions), JSON-ready, for checkpoints;
        empty for a criterion that learns nothing."""
        return {}

    def load_state_dict(self, state: dict) -> None:  # noqa: B027 (plain criteria learn nothing)
        """Restore what `state_dict` returned."""
