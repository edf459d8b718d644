"""Subnet sampler interface: which subnets a training step trains."""

from __future__ import annotations

import random
from abc import ABC, abstractmethod

from efsnas.api.search_space import Subnet


class SubnetSampler(ABC):
    """Draws, for one training step, a list of (supernet index, subnet) pairs.

    Randomness is explicit: each step's draw comes from a generator seeded by (seed, step), so a
    resumed run and every distributed rank draw the same subnets without shared state.
    """

    name: str = ""

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = seed

    def rng_for_step(self, step: int) -> random.Random:
        """The random generator for global step `step`, seeded by the sampler's name, seed and the
        step, so a step draws the same subnets whenever it is replayed (e.g. after resuming)."""
        return random.Random(f"{self.name}:{self.seed}:{step}")

    @abstractmethod
    def draw(self, step: int) -> list[tuple[int, Subnet]]:
        """The (supernet, subnet) pairs trained at global step `step`."""
