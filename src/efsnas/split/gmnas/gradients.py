"""Drawing subnets within a subspace, and the gradients each choice induces on shared weights."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from efsnas.api.search_space import SearchSpace, Subnet
from efsnas.api.split import Subspace
from efsnas.errors import UsageError
from efsnas.split.gmnas.decisions import _allowed

_ENUMERATE_LIMIT = 100_000  # product sizes listed exactly; larger ones use rejection sampling
_MAX_TRIES = 100_000  # rejection draws for one subnet
_EXIST_TRIES = 10_000  # rejection draws before a choice is taken to have no valid subnet


# ---- drawing subnets within a subspace --------------------------------------------------------


class _Draws:
    """Uniform draws of valid subnets of a subspace, optionally with one position fixed."""

    def __init__(self, space: SearchSpace, subspace: Subspace) -> None:
        self.space, self.subspace = space, subspace
        self.allowed = [_allowed(space, subspace, p) for p in range(len(space.choices))]
        self._lists: dict[tuple[int, int] | None, list[Subnet]] = {}
        self._valid: dict[int, list[int]] = {}

    def _ok(self, s: Subnet) -> bool:
        return self.space.is_valid(s) and self.subspace.contains(s)

    def _options(self, fixed: tuple[int, int] | None) -> list[list[int]]:
        opts = list(self.allowed)
        if fixed is not None:
            opts[fixed[0]] = [fixed[1]] if fixed[1] in opts[fixed[0]] else []
        return opts

    def _members(self, fixed: tuple[int, int] | None) -> list[Subnet] | None:
        """Every valid member when the product is small enough to list, else None."""
        if fixed not in self._lists:
            if _product(len(o) for o in self.allowed) > _ENUMERATE_LIMIT:
                return None
            if None not in self._lists:
                self._lists[None] = [s for s in itertools.product(*self.allowed) if self._ok(s)]
            p, c = fixed
            self._lists[fixed] = [s for s in self._lists[None] if s[p] == c]
        return self._lists[fixed]

    def draw(self, rng: random.Random, fixed: tuple[int, int] | None = None, *,
             tries: int = _MAX_TRIES) -> Subnet | None:
        members = self._members(fixed)
        if members is not None:
            return members[rng.randrange(len(members))] if members else None
        opts = self._options(fixed)
        if not all(opts):
            return None
        for _ in range(tries):
            s = tuple(o[rng.randrange(len(o))] for o in opts)
            if self._ok(s):
                return s
        return None

    def valid_choices(self, position: int) -> list[int]:
        """Allowed choices with a valid subnet (exact when listable, else by rejection)."""
        if position not in self._valid:
            # Own generator: the caller's stream must not depend on this check.
            probe = random.Random(f"gmnas-valid:{position}")
            self._valid[position] = [c for c in self.allowed[position]
                                     if self.draw(probe, (position, c), tries=_EXIST_TRIES)]
        return self._valid[position]


def _product(xs: Iterable[int]) -> int:
    n = 1
    for x in xs:
        n *= x
    return n


# ---- gradients and their similarity -----------------------------------------------------------


_OWNED_CACHE: dict[tuple, frozenset[str]] = {}


def owned_parameters(supernet: nn.Module, space: SearchSpace, position: int, *,
                     probes: int = 8) -> frozenset[str]:
    """Names of the parameters of `position`'s own operation modules (see the module docstring).

    Structural, so cached per supernet description: building subnets for the probes is slow."""
    describe = getattr(supernet, "describe", None)
    key = None
    if callable(describe):
        key = (type(supernet).__qualname__, json.dumps(describe(), sort_keys=True, default=str),
               json.dumps(space.describe(), sort_keys=True, default=str), position, probes)
        if key in _OWNED_CACHE:
            return _OWNED_CACHE[key]
    names = {id(p): n for n, p in supernet.named_parameters()}
    probe_rng = random.Random(f"gmnas-owned:{position}")
    users: dict[int, set[frozenset[int]]] = {}
    for _ in range(probes):
        base = list(space.sample(probe_rng))
        touched: dict[int, set[int]] = {}
        for c in range(space.choices[position]):
            base[position] = c
            try:
                params = supernet.subnet_parameters(tuple(base))
            except (UsageError, ValueError):  # an invalid choice here (e.g. a forbidden Identity)
                continue
            for p in params:
                touched.setdefault(id(p), set()).add(c)
        for pid, cs in touched.items():
            users.setdefault(pid, set()).add(frozenset(cs))
    owned = frozenset(names[pid] for pid, sets in users.items()
                      if len(sets) == 1 and len(next(iter(sets))) == 1)
    if key is not None:
        _OWNED_CACHE[key] = owned
    return owned


def _mean_gradient(supernet: nn.Module, subnets: list[Subnet], batches, params: list[nn.Parameter],
                   loss_fn: Callable) -> torch.Tensor:
    total = torch.zeros(sum(p.numel() for p in params), device=params[0].device)
    for s in subnets:
        for x, y in batches:
            loss = loss_fn(supernet(x, s), y)
            if not loss.requires_grad:
                continue
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            total += torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1).float()
                                for g, p in zip(grads, params, strict=True)])
    return total / max(1, len(subnets) * len(batches))


def gradient_similarity(supernet: nn.Module, space: SearchSpace, subspace: Subspace, position: int,
                        batches: Iterable, *, samples: int, rng: random.Random,
                        loss_fn: Callable = F.cross_entropy) -> tuple[list[int], torch.Tensor]:
    """Cosine similarities (float64, n x n) of the shared-weight gradients with each valid choice
    fixed at `position`, and those choices. The supernet's weights, buffers and mode are restored."""
    return _similarity(supernet, _Draws(space, subspace), position, list(batches),
                       samples=samples, rng=rng, loss_fn=loss_fn)


def _similarity(supernet: nn.Module, draws: _Draws, position: int, batches: list, *, samples: int,
                rng: random.Random, loss_fn: Callable) -> tuple[list[int], torch.Tensor]:
    space, subspace = draws.space, draws.subspace
    if samples < 1:
        raise UsageError(f"samples must be >= 1, got {samples}")
    if not batches:
        raise UsageError("gradient matching needs at least one batch")
    choices = draws.valid_choices(position)
    if not choices:
        raise UsageError(f"subspace {subspace.name} has no valid subnet")
    per_choice: dict[int, list[Subnet]] = {c: [] for c in choices}
    for _ in range(samples):
        base = draws.draw(rng)
        for c in choices:
            s = None if base is None else base[:position] + (c,) + base[position + 1:]
            s = s if s is not None and draws._ok(s) else draws.draw(rng, (position, c))
            if s is None:
                raise UsageError(f"no valid subnet of {subspace.name} found with choice {c} at "
                                 f"position {position} in {_MAX_TRIES} draws")
            per_choice[c].append(s)
    owned = owned_parameters(supernet, space, position)
    params = [p for n, p in supernet.named_parameters() if p.requires_grad and n not in owned]
    if not params:
        raise UsageError(f"position {position}: the supernet has no shared parameters to compare")
    device = params[0].device
    batches = [(x.to(device), y.to(device)) for x, y in batches]
    buffers = {k: b.clone() for k, b in supernet.named_buffers()}
    was_training = supernet.training
    supernet.train()
    try:
        with torch.enable_grad():
            grads = torch.stack([_mean_gradient(supernet, per_choice[c], batches, params, loss_fn)
                                 for c in choices])
    finally:
        supernet.train(was_training)
        with torch.no_grad():  # train-mode BN running statistics are not part of the decision
            for k, b in supernet.named_buffers():
                b.copy_(buffers[k])
    gram = torch.zeros(len(choices), len(choices), dtype=torch.float64, device=device)
    for a in range(0, grads.shape[1], 1 << 20):  # float64 sums without a float64 copy of it all
        part = grads[:, a:a + (1 << 20)].double()
        gram += part @ part.T
    norm = gram.diag().sqrt().clamp_min(1e-12)
    sim = gram / norm[:, None] / norm[None, :]
    sim = (sim + sim.T) / 2  # exactly symmetric despite rounding
    sim.fill_diagonal_(1.0)
    return choices, sim.cpu()
