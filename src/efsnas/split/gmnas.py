"""GM-NAS (Hu et al., ICLR 2022): split a warmed-up supernet where operations' gradients disagree.

A GM-NAS subspace is a conjunction of partial assignments `{position: allowed choices}`; the
whole space is the empty conjunction. A split is learned one decision at a time and replayed by
`GMNASSplit(decisions=...)`, so a learned split is saved once (`to_json`) and reused.

Use in sequence (the trainer does the epochs; these functions only decide and copy weights):

    crit = GMNASSplit(width_divisor=1)
    nets = FewShotSupernets(crit.split(space))               # one subspace: the one-shot supernet
    ... train nets for the warm-up epochs (e.g. 15) ...
    nets, decisions = split_each(nets, crit, batches, num_groups=2, rng=random.Random(seed))
    ... rebuild the optimizer (new parameters; see `source_indices`), train on (e.g. to 30) ...
    nets, decisions = split_each(nets, crit, batches, num_groups=2, rng=rng)  # 2 -> 4 supernets
    (run_dir / "gmnas-split.json").write_text(crit.to_json())  # then continue training

`choose_split` + `split_supernets` do the same for one subspace at a time.

Rules chosen here, where the paper leaves room:
- Shared weights of a position: every parameter except the position's own operation modules,
  found generically from `Supernet.subnet_parameters`: a parameter is owned by the position when,
  on every probe subnet that uses it, exactly one choice at the position uses it (and always the
  same one). Parameters a draw leaves untouched get zero gradient, so vectors align. A supernet that
  does not override `subnet_parameters` owns nothing: all its parameters are compared.
- Draws are paired, as in the authors' code: per sample, one subnet is drawn uniformly from the
  parent subspace and only the position's choice is changed; a choice for which that subnet is
  invalid gets its own uniform draw among the valid subnets with that choice. Gradients are
  averaged over samples and batches (the same batches for every choice), then compared by cosine
  (the authors' code averages per-draw cosine matrices instead).
- A choice with no valid subnet in the parent (an Identity forbidden at a position) is left out of
  the similarity matrix and joins the first group, so the children's assignments still cover the
  parent's; it changes no subnet's routing.
- Candidate positions are those the subspace has not split yet (the authors' code), unless given.
- Within a position the cut minimises the total cross-group similarity (exact enumeration; the
  authors' NAS-Bench-201 code instead keeps only 2|3 cuts: `balanced=True`). Positions are ranked
  by their cut's mean cross-group similarity, so positions with 6 and 7 choices compare fairly.
"""

from __future__ import annotations

import itertools
import json
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from efsnas.api.search_space import SearchSpace, Subnet
from efsnas.api.split import Split, SplitCriterion, Subspace
from efsnas.errors import UsageError
from efsnas.registry import register_criterion
from efsnas.supernets.fewshot import FewShotSupernets

MAX_PARTITION_CHOICES = 10  # exhaustive cuts: at most S(10, 5) = 42,525 partitions
_ENUMERATE_LIMIT = 100_000  # product sizes listed exactly; larger ones use rejection sampling
_MAX_TRIES = 100_000  # rejection draws for one subnet
_EXIST_TRIES = 10_000  # rejection draws before a choice is taken to have no valid subnet


# ---- subspaces as partial assignments --------------------------------------------------------


def subspace_from_spec(spec: dict) -> Subspace:
    """Subspace from `{"assign": {"position": [choices]}}` (the JSON form this module writes)."""
    try:
        assign = {int(p): frozenset(int(c) for c in cs) for p, cs in spec.get("assign", {}).items()}
    except (AttributeError, TypeError, ValueError):
        raise UsageError(f"bad GM-NAS subspace {spec!r}: write {{'assign': {{'2': [0, 3]}}}}") from None
    return _subspace(assign)


def _subspace(assign: dict[int, frozenset[int]]) -> Subspace:
    name = "&".join(f"pos{p}={','.join(map(str, sorted(assign[p])))}" for p in sorted(assign))
    spec = {"assign": {str(p): sorted(assign[p]) for p in sorted(assign)}}
    return Subspace(name=name or "all", spec=spec,
                    contains=lambda s: all(s[p] in cs for p, cs in assign.items()))


def _assign(subspace: Subspace) -> dict[int, frozenset[int]]:
    return {int(p): frozenset(cs) for p, cs in subspace.spec.get("assign", {}).items()}


def _allowed(space: SearchSpace, subspace: Subspace, position: int) -> list[int]:
    return sorted(_assign(subspace).get(position, range(space.choices[position])))


# ---- decisions and the criterion that replays them ---------------------------------------------


@dataclass
class SplitDecision:
    """One learned split: subspace `parent` cut at `position` into `groups` of choices."""

    parent: int
    position: int
    groups: list[list[int]]
    score: float
    scores_per_position: dict[int, float] = field(default_factory=dict)
    similarity: list[list[float]] = field(default_factory=list)  # of the chosen position
    seconds: float = 0.0
    choices: list[int] = field(default_factory=list)  # rows/columns of `similarity`

    def to_dict(self) -> dict:
        d = asdict(self)
        d["scores_per_position"] = {str(p): s for p, s in self.scores_per_position.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> SplitDecision:
        d = dict(d)
        d["scores_per_position"] = {int(p): float(s)
                                    for p, s in d.get("scores_per_position", {}).items()}
        return cls(**d)


class _GMNASSplitResult(Split):
    def __init__(self, *args, decisions: list[SplitDecision], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.decisions = decisions

    def describe(self) -> dict:
        return {**super().describe(), "decisions": [d.to_dict() for d in self.decisions]}


class GMNASSplit(SplitCriterion):
    """Replays learned GM-NAS decisions; with none it is the one-shot split."""

    name = "gmnas"

    def __init__(self, *, decisions: Sequence[SplitDecision | dict] | None = None,
                 width_divisor: int = 1) -> None:
        if not isinstance(width_divisor, int) or width_divisor < 1:
            raise UsageError(f"width divisor must be a positive integer, got {width_divisor!r}")
        self.width_divisor = width_divisor
        self.decisions = [d if isinstance(d, SplitDecision) else SplitDecision.from_dict(d)
                          for d in decisions or []]

    def subspaces(self, space: SearchSpace) -> list[Subspace]:
        subs = [_subspace({})]
        for i, d in enumerate(self.decisions):
            if not 0 <= d.parent < len(subs):
                raise UsageError(f"GM-NAS decision {i}: parent {d.parent} outside 0..{len(subs) - 1}")
            if not 0 <= d.position < len(space.choices):
                raise UsageError(f"GM-NAS decision {i}: position {d.position} outside "
                                 f"0..{len(space.choices) - 1} of the {space.name} space")
            allowed = _allowed(space, subs[d.parent], d.position)
            flat = [c for g in d.groups for c in g]
            if any(not g for g in d.groups) or len(d.groups) < 2 or sorted(flat) != allowed:
                raise UsageError(
                    f"GM-NAS decision {i}: groups {d.groups} must be at least two non-empty, "
                    f"disjoint groups covering the parent's choices {allowed} at position {d.position}"
                )
            base = _assign(subs[d.parent])
            children = [_subspace({**base, d.position: frozenset(g)}) for g in d.groups]
            subs[d.parent:d.parent + 1] = children
        return subs

    def split(self, space: SearchSpace) -> Split:
        return _GMNASSplitResult(space, self.subspaces(space), criterion=self.name,
                                 width_divisor=self.width_divisor, decisions=list(self.decisions))

    def state_dict(self) -> dict:
        return {"criterion": self.name, "width_divisor": self.width_divisor,
                "decisions": [d.to_dict() for d in self.decisions]}

    def load_state_dict(self, state: dict) -> None:
        if state.get("criterion") != self.name:
            raise UsageError(f"not a GM-NAS split state (criterion {state.get('criterion')!r})")
        fresh = GMNASSplit(decisions=state.get("decisions", []),
                           width_divisor=state.get("width_divisor", 1))
        self.width_divisor, self.decisions = fresh.width_divisor, fresh.decisions

    def to_json(self) -> str:
        return json.dumps(self.state_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> GMNASSplit:
        crit = cls()
        crit.load_state_dict(json.loads(text))
        return crit


register_criterion("gmnas")(GMNASSplit)


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


# ---- the cut ------------------------------------------------------------------------------


def _partitions(n: int, k: int, balanced: bool):
    """Restricted growth strings of n items in exactly k groups, in lexicographic order."""
    labels = [0] * n

    def rec(i: int, used: int):
        if n - i < k - used:
            return
        if i == n:
            if used == k:
                sizes = [labels.count(g) for g in range(k)]
                if not balanced or max(sizes) - min(sizes) <= 1:
                    yield list(labels)
            return
        for g in range(min(used + 1, k)):
            labels[i] = g
            yield from rec(i + 1, max(used, g + 1))

    if n:
        yield from rec(1, 1)


def best_partition(similarity: torch.Tensor | Sequence[Sequence[float]], num_groups: int, *,
                   balanced: bool = False) -> tuple[list[list[int]], float]:
    """Groups of indices (each sorted, ordered by first member) minimising the total similarity
    between members of different groups, and that total. Exact: every partition into exactly
    `num_groups` non-empty groups is tried; ties go to the first in lexicographic label order."""
    sim = torch.as_tensor(similarity, dtype=torch.float64).tolist()
    n = len(sim)
    if not 1 <= num_groups <= n:
        raise UsageError(f"cannot cut {n} choices into {num_groups} non-empty groups")
    if n > MAX_PARTITION_CHOICES:
        raise UsageError(f"exhaustive cut supports at most {MAX_PARTITION_CHOICES} choices, got {n}")
    pairs = [(i, j, (sim[i][j] + sim[j][i]) / 2) for i in range(n) for j in range(i + 1, n)]
    best, best_cut = None, float("inf")
    for labels in _partitions(n, num_groups, balanced):
        cut = sum(w for i, j, w in pairs if labels[i] != labels[j])
        if cut < best_cut - 1e-12:
            best, best_cut = labels, cut
    groups = [[i for i in range(n) if best[i] == g] for g in range(num_groups)]
    return groups, best_cut


def _cross_pairs(groups: list[list[int]]) -> int:
    n = sum(len(g) for g in groups)
    return (n * n - sum(len(g) ** 2 for g in groups)) // 2


def choose_split(supernet: nn.Module, space: SearchSpace, subspace: Subspace, batches: Iterable, *,
                 num_groups: int = 2, samples: int = 4, positions: Sequence[int] | None = None,
                 rng: random.Random, parent: int = 0, balanced: bool = False,
                 loss_fn: Callable = F.cross_entropy) -> SplitDecision:
    """Gradient-match every candidate position of `subspace` and pick the one whose best cut has
    the lowest mean cross-group similarity (ties: lowest position). Deterministic given `rng`.

    Candidates: `positions`, or by default every position the subspace has not split yet (as in
    the authors' code) with at least `num_groups` valid choices."""
    t0 = time.perf_counter()
    batches = list(batches)
    draws = _Draws(space, subspace)
    for p in positions or ():
        if not 0 <= p < len(space.choices):
            raise UsageError(f"position {p} outside 0..{len(space.choices) - 1}")
    if positions is None:
        # As in the authors' code: positions not split yet; once all are, any with choices left.
        splittable = [p for p in range(len(space.choices))
                      if len(draws.valid_choices(p)) >= num_groups]
        done = set(_assign(subspace))
        positions = [p for p in splittable if p not in done] or splittable
    best: tuple | None = None
    scores: dict[int, float] = {}
    for p in positions:
        if len(draws.valid_choices(p)) < num_groups:
            continue  # too few valid choices left to cut
        choices, sim = _similarity(supernet, draws, p, batches, samples=samples, rng=rng,
                                   loss_fn=loss_fn)
        idx_groups, cut = best_partition(sim, num_groups, balanced=balanced)
        scores[p] = cut / _cross_pairs(idx_groups)
        if best is None or scores[p] < best[1] - 1e-12:
            best = (p, scores[p], choices, sim, [[choices[i] for i in g] for g in idx_groups])
    if best is None:
        raise UsageError(f"no position of subspace {subspace.name} has {num_groups} valid choices "
                         "left to split")
    p, score, choices, sim, groups = best
    groups[0] = sorted(groups[0] + [c for c in _allowed(space, subspace, p) if c not in choices])
    return SplitDecision(parent=parent, position=p, groups=groups, score=score,
                         scores_per_position=scores, similarity=sim.tolist(),
                         seconds=time.perf_counter() - t0, choices=choices)


# ---- children inherit the parent's weights --------------------------------------------------


def source_indices(decision: SplitDecision, num_subspaces: int) -> list[int]:
    """For each supernet after the split, the index of the supernet it starts from."""
    g = len(decision.groups)
    return [j if j < decision.parent else decision.parent if j < decision.parent + g else j - g + 1
            for j in range(num_subspaces + g - 1)]


def split_supernets(supernets: FewShotSupernets, decision: SplitDecision,
                    criterion: GMNASSplit) -> FewShotSupernets:
    """New supernets with the parent replaced by its children, each starting from the parent's
    weights (the others carried over). Appends `decision` to `criterion`, so its JSON is the
    learned split. Parameters are new objects: rebuild the optimizer."""
    if supernets.structure != "separate":
        raise UsageError("GM-NAS splits need separate supernets (structure: separate)")
    space = supernets.space
    if len(criterion.subspaces(space)) != len(supernets):
        raise UsageError(f"the criterion has {len(criterion.subspaces(space))} subspaces but there "
                         f"are {len(supernets)} supernets: split them with this criterion")
    if supernets.split.width_divisor != criterion.width_divisor:
        raise UsageError(f"supernets use width divisor {supernets.split.width_divisor}, the "
                         f"criterion {criterion.width_divisor}")
    if supernets.split.criterion == criterion.name and (
            [s.spec for s in supernets.split.subspaces]
            != [s.spec for s in criterion.subspaces(space)]):
        raise UsageError("the supernets' subspaces differ from the criterion's decisions")
    grown = GMNASSplit(decisions=[*criterion.decisions, decision],
                       width_divisor=criterion.width_divisor)
    new = FewShotSupernets(grown.split(space), structure="separate")
    ref = next(supernets.parameters(), None)
    if ref is not None:
        new.to(ref.device)
    for j, src in enumerate(source_indices(decision, len(supernets))):
        new.supernet(j).load_state_dict(supernets.supernet(src).state_dict())
    criterion.decisions = grown.decisions
    return new


def split_each(supernets: FewShotSupernets, criterion: GMNASSplit, batches: Iterable, *,
               num_groups: int = 2, samples: int = 4, rng: random.Random,
               positions: Sequence[int] | None = None, balanced: bool = False,
               loss_fn: Callable = F.cross_entropy) -> tuple[FewShotSupernets, list[SplitDecision]]:
    """Split every current subspace once (GM-NAS's second split point), all decided on the current
    weights, applied from the last subspace to the first so parent indices stay valid; returns the
    decisions in the order applied (the order `criterion.decisions` records them)."""
    batches = list(batches)
    subs = criterion.subspaces(supernets.space)
    decisions = [choose_split(supernets.supernet(k), supernets.space, subs[k], batches,
                              num_groups=num_groups, samples=samples, positions=positions, rng=rng,
                              parent=k, balanced=balanced, loss_fn=loss_fn)
                 for k in range(len(subs))]
    decisions.reverse()
    for d in decisions:
        supernets = split_supernets(supernets, d, criterion)
    return supernets, decisions
