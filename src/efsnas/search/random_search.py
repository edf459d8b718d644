"""Random search: `budget` distinct random subnets, evaluated in batches of `batch_size`."""

from __future__ import annotations

from efsnas.api.search_space import SearchSpace, Subnet
from efsnas.search.base import Searcher, _positive


class RandomSearch(Searcher):
    """Random search: `budget` distinct random valid subnets within the limits, proposed
    `batch_size` at a time."""

    name = "random"
    resizable = ("budget",)

    def __init__(self, space: SearchSpace, *, budget: int = 1000, batch_size: int = 50,
                 **kwargs) -> None:
        super().__init__(space, **kwargs)
        _positive(self.name, budget=budget, batch_size=batch_size)
        self.budget, self.batch_size = budget, batch_size

    def config(self) -> dict:
        return {**super().config(), "budget": self.budget, "batch_size": self.batch_size}

    def finished(self) -> bool:
        return len(self.history) >= self.budget

    def propose(self) -> list[Subnet]:
        out: list[Subnet] = []
        self.random_fill(out, set(), min(self.batch_size, self.budget - len(self.history)))
        return out
