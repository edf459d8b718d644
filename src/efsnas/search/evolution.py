"""Evolutionary search (method section 6, after SPOS).

The first generation is `population` random subnets. Each later one holds `mutations` mutants
and `crossovers` children of the `topk` best subnets evaluated so far, filled up to
`population` with random subnets. No subnet (equivalence class) is evaluated twice, and a
subnet over a FLOPs / parameter limit is never evaluated.
"""

from __future__ import annotations

from efsnas.api.search_space import EvolutionMixin, SearchSpace, Subnet
from efsnas.errors import UsageError
from efsnas.search.base import Searcher, _positive


class EvolutionSearch(Searcher):
    """Evolutionary search over `generations` generations: `population` random subnets first,
    then mutants and crossovers of the `topk` best found so far (see the module docstring)."""

    name = "evolution"
    resizable = ("generations",)

    def __init__(self, space: SearchSpace, *, population: int = 50, generations: int = 20,
                 topk: int = 10, mutations: int = 25, crossovers: int = 25,
                 mutate_prob: float = 0.1, **kwargs) -> None:
        super().__init__(space, **kwargs)
        if not isinstance(space, EvolutionMixin):
            raise UsageError(f"evolution search needs a space that can mutate and cross over "
                             f"(EvolutionMixin); {space.name or type(space).__name__} cannot: "
                             "use random search")
        _positive(self.name, population=population, generations=generations, topk=topk)
        for key, v in (("mutations", mutations), ("crossovers", crossovers)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise UsageError(f"evolution search: {key} must be an integer >= 0, got {v!r}")
        if mutations + crossovers > population:
            raise UsageError(f"evolution search: mutations + crossovers ({mutations + crossovers})"
                             f" exceed the population ({population})")
        if not 0 < mutate_prob <= 1:
            raise UsageError(f"evolution search: mutate_prob must be in (0, 1], got {mutate_prob}")
        self.population, self.generations, self.topk = population, generations, topk
        self.mutations, self.crossovers, self.mutate_prob = mutations, crossovers, mutate_prob

    def config(self) -> dict:
        return {**super().config(), "population": self.population,
                "generations": self.generations, "topk": self.topk, "mutations": self.mutations,
                "crossovers": self.crossovers, "mutate_prob": self.mutate_prob}

    def finished(self) -> bool:
        return self.generation >= self.generations

    def propose(self) -> list[Subnet]:
        out: list[Subnet] = []
        batch: set[Subnet] = set()
        parents = [tuple(r["subnet"]) for r in self.top_k(self.topk)]
        if parents:
            self._breed(out, batch, len(out) + self.mutations, lambda: self.space.mutate(
                self.rng.choice(parents), self.rng, self.mutate_prob))
            self._breed(out, batch, len(out) + self.crossovers, lambda: self.space.crossover(
                *self._two_parents(parents), self.rng))
        self.random_fill(out, batch, self.population)
        return out

    def _two_parents(self, parents: list[Subnet]) -> tuple[Subnet, Subnet]:
        if len(parents) == 1:  # only one subnet evaluated so far
            return parents[0], parents[0]
        a, b = self.rng.sample(parents, 2)
        return a, b

    def _breed(self, out: list[Subnet], batch: set[Subnet], upto: int, make) -> None:
        """Append children from `make()` until `out` holds `upto` (SPOS: 10 tries per child)."""
        for _ in range(10 * max(0, upto - len(out))):
            if len(out) >= upto:
                return
            child = make()
            if self.accept(child, batch):
                out.append(child)
