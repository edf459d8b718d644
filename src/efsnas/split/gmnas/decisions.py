"""GM-NAS subspaces (conjunctions of partial assignments), decisions, and the criterion
that replays them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from efsnas.api.search_space import SearchSpace
from efsnas.api.split import Split, SplitCriterion, Subspace
from efsnas.errors import UsageError
from efsnas.registry import register_criterion

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
        """The decision, JSON-ready (position keys as strings)."""
        d = asdict(self)
        d["scores_per_position"] = {str(p): s for p, s in self.scores_per_position.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> SplitDecision:
        """The decision that `to_dict` wrote."""
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
    label = "GM-NAS (gradient matching, full width)"

    config_fields = ("gm_warmup_epochs", "gm_groups", "gm_samples", "gm_balanced")

    @classmethod
    def from_config(cls, split_config) -> GMNASSplit:
        return cls(width_divisor=split_config.width_divisor or 1,
                   warmup_epochs=split_config.gm_warmup_epochs, groups=split_config.gm_groups,
                   samples=split_config.gm_samples, balanced=split_config.gm_balanced)

    def __init__(self, *, decisions: Sequence[SplitDecision | dict] | None = None,
                 width_divisor: int = 1, warmup_epochs: Sequence[int] = (),
                 groups: int = 2, samples: int = 4, balanced: bool = False) -> None:
        """`warmup_epochs`: the split epochs (every supernet is split in `groups` at each, by
        gradients over `samples` subnets per operation; `balanced`: near-even cuts only)."""
        if not isinstance(width_divisor, int) or width_divisor < 1:
            raise UsageError(f"width divisor must be a positive integer, got {width_divisor!r}")
        self.width_divisor = width_divisor
        self.decisions = [d if isinstance(d, SplitDecision) else SplitDecision.from_dict(d)
                          for d in decisions or []]
        self.warmup_epochs = sorted(int(e) for e in warmup_epochs)
        self.groups, self.samples, self.balanced = groups, samples, balanced

    # ---- staged training -----------------------------------------------------------------
    def split_epochs(self, epochs: int) -> list[int]:
        return [e for e in self.warmup_epochs if 0 < e < epochs]

    def initial_split(self, space: SearchSpace) -> Split:
        return GMNASSplit(width_divisor=self.width_divisor).split(space)

    def refine(self, supernets, batches: list, rng):
        """Split every supernet once; decisions learned before an interruption (in the loaded
        state) are replayed rather than learned again (same weights, same result)."""
        from efsnas.split.gmnas.inherit import split_each, split_supernets

        done = list(getattr(supernets.split, "decisions", []))
        work = GMNASSplit(decisions=done, width_divisor=self.width_divisor)
        saved = self.decisions[len(done):len(done) + len(supernets)]
        if len(saved) == len(supernets):
            for d in saved:
                supernets = split_supernets(supernets, d, work)
            return supernets
        supernets, _ = split_each(supernets, work, batches, num_groups=self.groups,
                                  samples=self.samples, rng=rng, balanced=self.balanced)
        self.decisions = list(work.decisions)
        return supernets

    def recorded_split_seconds(self) -> float | None:
        return sum(d.seconds for d in self.decisions)

    def stage_sizes(self, space: SearchSpace, epochs: int) -> list[int]:
        return [self.groups ** i for i in range(len(self.split_epochs(epochs)) + 1)]

    def stretched_schedule(self, split_config, factor: float) -> dict:
        return {"split.gm_warmup_epochs": [round(e * factor)
                                           for e in split_config.gm_warmup_epochs]}

    def published_schedule(self, split_config, epochs: int, space: SearchSpace,
                           draws_per_step: int) -> dict:
        """Between split epochs, each stage grows by its number of supernets."""
        points, sizes = self.split_epochs(epochs), self.stage_sizes(space, epochs)
        new_points, pos, prev = [], 0, 0
        for p, k in zip(points, sizes):
            pos += (p - prev) * k
            new_points.append(pos)
            prev = p
        total = pos + (epochs - prev) * sizes[-1]
        return {"train.epochs": total, "split.gm_warmup_epochs": new_points}

    def subspaces(self, space: SearchSpace) -> list[Subspace]:
        """The subspaces the decisions so far make: starting from the whole space, each decision
        replaces its parent by one child per group; raises UsageError for a decision that does
        not fit."""
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
        """The criterion's state (its decisions) as JSON text."""
        return json.dumps(self.state_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> GMNASSplit:
        """A criterion replaying the decisions of JSON text that `to_json` wrote."""
        crit = cls()
        crit.load_state_dict(json.loads(text))
        return crit


register_criterion("gmnas")(GMNASSplit)
