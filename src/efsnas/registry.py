"""Named components behind one factory per kind (spaces, split criteria, samplers)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from efsnas.errors import UsageError

_REGISTRIES: dict[str, dict[str, Callable[..., Any]]] = {"space": {}, "criterion": {}, "sampler": {}}


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


def _load_builtins() -> None:
    # Importing the packages runs their @register decorators.
    import efsnas.sampling  # noqa: F401
    import efsnas.spaces  # noqa: F401
    import efsnas.split  # noqa: F401


def _create(kind: str, name: str, **kwargs):
    _load_builtins()
    reg = _REGISTRIES[kind]
    if name not in reg:
        raise UsageError(f"unknown {kind} {name!r}; choose one of: {', '.join(sorted(reg))}")
    factory = reg[name]
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


def list_spaces() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRIES["space"])


def list_criteria() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRIES["criterion"])


def list_samplers() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRIES["sampler"])
