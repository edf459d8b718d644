"""A toy search space with a known optimum, independent of any data files."""

from __future__ import annotations

import pytest

from efsnas.api.search_space import EvolutionMixin, SearchSpace, Subnet
from efsnas.errors import UsageError


class PlainSpace(SearchSpace):
    """Eight positions of five choices. The all-zero subnet is invalid; position 7 is dead
    (reset to 0 by `canonical`) when position 6 is 0, so classes exist as in NAS-Bench-201."""

    name = "toy"  # without EvolutionMixin: evolution must refuse it

    def __init__(self, *, positions: int = 8, options: int = 5) -> None:
        self._choices = (options,) * positions

    @property
    def choices(self) -> tuple[int, ...]:
        return self._choices

    def parse(self, text: str) -> Subnet:
        try:
            return self.check(int(c) for c in text.split("-"))
        except ValueError:
            raise UsageError(f"bad toy subnet {text!r}") from None

    def format(self, subnet: Subnet) -> str:
        return "-".join(str(c) for c in subnet)

    def is_valid(self, subnet: Subnet) -> bool:
        return any(subnet)

    def canonical(self, subnet: Subnet) -> Subnet:
        if len(subnet) >= 2 and subnet[-2] == 0:
            return (*subnet[:-1], 0)
        return subnet

    def nonlinearity_count(self, subnet: Subnet) -> int:
        return sum(1 for c in subnet if c)

    @property
    def possible_counts(self) -> tuple[int, ...]:
        return tuple(range(len(self.choices) + 1))

    @property
    def default_groups(self) -> tuple[tuple[int, ...], ...]:
        return (self.possible_counts,)

    def flops(self, subnet: Subnet) -> int:
        return 100 * sum(subnet)

    def params(self, subnet: Subnet) -> int:
        return 10 * sum(c * c for c in subnet)

    def build_network(self, subnet, **kwargs):
        raise NotImplementedError

    def build_supernet(self, *, width_divisor: int = 1, **kwargs):
        raise NotImplementedError


class ToySpace(EvolutionMixin, PlainSpace):
    """The same space with per-position mutation and crossover."""

TARGET = (3, 1, 4, 1, 2, 0, 2, 3)


def _toy_score(subnet: Subnet) -> float:
    """Unique maximum 0 at TARGET; depends on the class only (TARGET[-2] != 0)."""
    return -float(sum(abs(a - b) for a, b in zip(ToySpace().canonical(subnet), TARGET)))


@pytest.fixture
def toy_space() -> ToySpace:
    return ToySpace()


@pytest.fixture
def toy_objective():
    """Batch objective recording every subnet it is asked to score."""

    class Objective:
        def __init__(self) -> None:
            self.seen: list[Subnet] = []
            self.calls = 0

        def __call__(self, batch: list[Subnet]) -> list[float]:
            self.calls += 1
            self.seen.extend(batch)
            return [_toy_score(s) for s in batch]

    return Objective()


# Plain values and classes as fixtures, so tests need not import conftest (fragile).
@pytest.fixture
def toy_score():
    return _toy_score


@pytest.fixture
def toy_target() -> Subnet:
    return TARGET


@pytest.fixture
def plain_space() -> PlainSpace:
    return PlainSpace()


@pytest.fixture
def toy_space_cls() -> type[ToySpace]:
    return ToySpace
