"""Named components behind one registry, timm-style: spaces, split criteria, samplers,
searchers and datasets. A component registers itself under a name; configs, command-line
choices and `efsnas compare`'s rows are derived from what is registered."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from efsnas.errors import UsageError

KINDS = ("space", "criterion", "sampler", "searcher", "dataset")
_REGISTRIES: dict[str, dict[str, Callable[..., Any]]] = {kind: {} for kind in KINDS}


def _register(kind: str, name: str):
    def deco(fn):
        _REGISTRIES[kind][name] = fn
        return fn

    return deco


def register_space(name: str):
    return _register("space", name)


def register_criterion(name: str):
    return _register("criterion", name)


def register_sampler(name: str):
    return _register("sampler", name)


def register_searcher(name: str):
    return _register("searcher", name)


def register_dataset(name: str):
    return _register("dataset", name)


def _load_builtins() -> None:
    # Importing the packages runs their @register decorators.
    import efsnas.data  # noqa: F401
    import efsnas.sampling  # noqa: F401
    import efsnas.search  # noqa: F401
    import efsnas.spaces  # noqa: F401
    import efsnas.split  # noqa: F401


def _create(kind: str, name: str, **kwargs):
    factory = lookup(kind, name)
    try:
        accepted = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        accepted = {}
    if accepted and not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        unknown = sorted(set(kwargs) - set(accepted))
        if unknown:
            raise UsageError(f"the {name} {kind} has no option {unknown[0]!r}; its options: "
                             f"{', '.join(accepted)}")
    return factory(**kwargs)


def create_space(name: str, **kwargs):
    """Build a registered search space, e.g. create_space("nb201", C=16, N=5)."""
    return _create("space", name, **kwargs)


def create_criterion(name: str, **kwargs):
    return _create("criterion", name, **kwargs)


def create_sampler(name: str, **kwargs):
    return _create("sampler", name, **kwargs)


def names(kind: str) -> list[str]:
    """The registered names of one kind of component (what configs and flags may name)."""
    _load_builtins()
    return sorted(_REGISTRIES[kind])


def lookup(kind: str, name: str) -> Callable[..., Any]:
    _load_builtins()
    reg = _REGISTRIES[kind]
    if name not in reg:
        raise UsageError(f"unknown {kind} {name!r}; choose one of: {', '.join(sorted(reg))}")
    return reg[name]


def list_spaces() -> list[str]:
    return names("space")


def list_criteria() -> list[str]:
    return names("criterion")


def list_samplers() -> list[str]:
    return names("sampler")
