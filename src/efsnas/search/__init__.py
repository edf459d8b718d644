"""Search strategies over any SearchSpace, behind one factory: create_searcher("evolution", ...)."""

from __future__ import annotations

import inspect

from efsnas.errors import UsageError
from efsnas.registry import lookup, names, register_searcher
from efsnas.search.base import Candidate, Searcher, SearchResult
from efsnas.search.evolution import EvolutionSearch
from efsnas.search.random_search import RandomSearch

register_searcher("evolution")(EvolutionSearch)
register_searcher("random")(RandomSearch)


def list_searchers() -> list[str]:
    """Names of the registered search strategies."""
    return names("searcher")


def searcher_options(name: str) -> list[str]:
    """Keyword options a searcher accepts (its own and the base class's)."""
    cls = _lookup(name)
    keys = []
    for klass in (cls, Searcher):
        keys += [p.name for p in inspect.signature(klass.__init__).parameters.values()
                 if p.kind is p.KEYWORD_ONLY and p.name not in keys]
    return keys


def create_searcher(name: str, **kwargs) -> Searcher:
    """A searcher by name, e.g. create_searcher("evolution", space=space, seed=0, max_flops=...).
    Unknown options are a UsageError naming the ones accepted."""
    cls = _lookup(name)
    if "space" not in kwargs:
        raise UsageError(f"create_searcher({name!r}) needs space=")
    options = searcher_options(name)
    unknown = sorted(set(kwargs) - set(options) - {"space"})
    if unknown:
        raise UsageError(f"{name} search has no option {unknown[0]!r}; its options: "
                         f"{', '.join(options)}")
    return cls(kwargs.pop("space"), **kwargs)


def _lookup(name: str) -> type[Searcher]:
    return lookup("searcher", name)


__all__ = ["Candidate", "EvolutionSearch", "RandomSearch", "SearchResult", "Searcher",
           "create_searcher", "list_searchers", "searcher_options"]
