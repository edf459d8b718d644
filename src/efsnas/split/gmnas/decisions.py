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
    label = "GM-NAS (gradient matching, full width)"

    @classmethod
    def from_config(cls, split_config) -> GMNASSplit:
        raise UsageError("the gmnas split is learned while training: use `efsnas compare` "
                         "(or efsnas.split.gmnas in Python)")

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
