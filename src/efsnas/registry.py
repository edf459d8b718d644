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
    """Decorator registering a space factory under `name` (configs and the command line then accept
    it)."""
    return _register("space", name)


def register_criterion(name: str):
    """Decorator registering a criterion factory under `name` (configs and the command line then
    accept it)."""
    return _register("criterion", name)


def register_sampler(name: str):
    """Decorator registering a sampler factory under `name` (configs and the command line then
    accept it)."""
    return _register("sampler", name)


def register_searcher(name: str):
    """Decorator registering a searcher factory under `name` (configs and the command line then
    accept it)."""
    return _register("searcher", name)


def register_dataset(name: str):
    """Decorator registering a dataset factory under `name` (configs and the command line then
    accept it)."""
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
    """Build a registered search space.

    Examples:
        >>> space = create_space("nb201", C=16, N=5)
        >>> cell = space.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|"
        ...                    "nor_conv_3x3~1|skip_connect~2|")
        >>> space.nonlinearity_count(cell), space.flops(cell), space.params(cell)
        (2, 113951360, 802426)
        >>> net = space.build_network(cell)            # stand-alone, to retrain or export
        >>> rnd = space.sample(random.Random(0))       # a uniformly random valid cell
    """
    return _create("space", name, **kwargs)


def create_criterion(name: str, **kwargs):
    """Build a registered split criterion; `.split(space)` gives the subspaces.

    Examples:
        >>> split = create_criterion("nonlinearity", groups="0,1/2/3").split(create_space("nb201"))
        >>> [s.name for s in split.subspaces], split.width_divisor
        (['count=0,1', 'count=2', 'count=3'], 3)
        >>> split.route(split.space.parse("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|"))
        0
    """
    return _create("criterion", name, **kwargs)


def create_sampler(name: str, **kwargs):
    """Build a registered subnet sampler: `draw(step)` gives the (supernet, subnet) pairs of one
    training step, the same on every rank and after a resume.

    Examples:
        >>> sbs = create_sampler("sbs", split=split, seed=0)  # one subnet per supernet a step
        >>> [k for k, _ in sbs.draw(0)]
        [0, 1, 2]
    """
    return _create("sampler", name, **kwargs)


def names(kind: str) -> list[str]:
    """The registered names of one kind of component (what configs and flags may name)."""
    _load_builtins()
    return sorted(_REGISTRIES[kind])


def lookup(kind: str, name: str) -> Callable[..., Any]:
    """The factory registered as `name` among the `kind` components; raises UsageError listing the
    registered names when there is none."""
    _load_builtins()
    reg = _REGISTRIES[kind]
    if name not in reg:
        raise UsageError(f"unknown {kind} {name!r}; choose one of: {', '.join(sorted(reg))}")
    return reg[name]


def list_spaces() -> list[str]:
    """Names of the registered search spaces."""
    return names("space")


def list_criteria() -> list[str]:
    """Names of the registered split criteria."""
    return names("criterion")


def list_samplers() -> list[str]:
    """Names of the registered subnet samplers."""
    return names("sampler")
