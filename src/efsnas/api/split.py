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
        return {
            "criterion": self.criterion,
            "width_divisor": self.width_divisor,
            "subspaces": [{"name": s.name, **s.spec} for s in self.subspaces],
        }


class SplitCriterion(ABC):
    # How `efsnas compare` trains this criterion by default, and what its row is called.
    compare_sampler: str = "balanced"
    label: str = ""

    @classmethod
    def from_config(cls, split_config) -> SplitCriterion:
        """The criterion a run's `split` config section describes (its own fields of it)."""
        return cls(width_divisor=split_config.width_divisor or 1)
    """Turns a search space into a Split. Interchangeable: one-shot, FS-NAS, GM-NAS, counting."""

    name: str = ""

    @abstractmethod
    def split(self, space: SearchSpace) -> Split: ...
