"""The three samplers. Each step's draw depends only on (seed, step), so every distributed rank
and a resumed run draw the same subnets with no state to save or broadcast."""

from __future__ import annotations

from efsnas.api.sampler import SubnetSampler
from efsnas.api.search_space import Subnet
from efsnas.api.split import Split
from efsnas.errors import UsageError
from efsnas.registry import register_sampler


class _SplitSampler(SubnetSampler):
    def __init__(self, split: Split, *, seed: int = 0) -> None:
        super().__init__(seed=seed)
        self.split = split


@register_sampler("uniform")
class UniformSampler(_SplitSampler):
    """One subnet per step, uniform over the valid subnets of the whole space (SPOS).

    Each subspace is then trained in proportion to its size."""

    name = "uniform"

    def draw(self, step: int) -> list[tuple[int, Subnet]]:
        s = self.split.space.sample(self.rng_for_step(step))
        return [(self.split.route(s), s)]


@register_sampler("balanced")
class BalancedSampler(_SplitSampler):
    """One subnet per step from a subspace chosen uniformly (the authors' NAS-Bench-201 runs)."""

    name = "balanced"

    def draw(self, step: int) -> list[tuple[int, Subnet]]:
        rng = self.rng_for_step(step)
        k = rng.randrange(len(self.split))
        return [(k, self.split.sample(k, rng))]


@register_sampler("sbs")
class SBSSampler(_SplitSampler):
    """Supernet-balanced sampling: one subnet from every subspace per step (method section 5)."""

    name = "sbs"

    def draw(self, step: int) -> list[tuple[int, Subnet]]:
        rng = self.rng_for_step(step)
        return [(k, self.split.sample(k, rng)) for k in range(len(self.split))]


SAMPLERS = {"uniform": UniformSampler, "balanced": BalancedSampler, "sbs": SBSSampler}


def create_sampler(name: str, split: Split, *, seed: int = 0) -> SubnetSampler:
    """The built-in sampler `name` (uniform, balanced or sbs) drawing from `split` with `seed`;
    raises UsageError for another name."""
    if name not in SAMPLERS:
        raise UsageError(f"unknown sampler {name!r}; choose one of: {', '.join(SAMPLERS)}")
    return SAMPLERS[name](split, seed=seed)
