"""Searcher interface: propose subnets in batches, score them once each, keep the best.

A searcher sees only the SearchSpace interface. Its life cycle is resumable: `state_dict()`
holds every evaluated subnet with its score, the RNG state and the generation, so a search
killed between generations continues to exactly the result of an uninterrupted run.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from efsnas.api.search_space import SearchSpace, Subnet
from efsnas.errors import CheckpointError, UsageError
from efsnas.fileio import write_json_atomic

log = logging.getLogger("efsnas.search")

Objective = Callable[[list[Subnet]], list[float]]  # batch scoring; higher is better
Checkpoint = Callable[[dict], None] | str | os.PathLike | None


@dataclass(frozen=True)
class Candidate:
    """One subnet a search found: the subnet, its text form, its score, FLOPs and parameters."""

    subnet: Subnet
    text: str
    score: float
    flops: int
    params: int


@dataclass
class SearchResult:
    """What a search returns: its best candidates (best first), every evaluation in order, and the
    number of generations it ran."""

    top: list[Candidate]  # best first
    history: list[dict] = field(repr=False)  # {"subnet", "score", "generation"} in order
    generations: int = 0

    @property
    def best(self) -> Candidate | None:
        """The best candidate (None when nothing was evaluated)."""
        return self.top[0] if self.top else None

    @property
    def evaluated(self) -> int:
        """How many subnets were evaluated."""
        return len(self.history)

    def to_dict(self) -> dict:
        """The result, JSON-ready (subnets as lists)."""
        return {"top": [{**asdict(c), "subnet": list(c.subnet)} for c in self.top],
                "evaluated": self.evaluated, "generations": self.generations,
                "history": self.history}


def _rank_key(score: float) -> float:
    return -math.inf if math.isnan(score) else score  # a NaN score ranks last


class Searcher(ABC):
    """Base of every search strategy. Subclasses implement `propose()` and `finished()`.

    `max_flops` / `max_params` are in the units of `space.flops` / `space.params`; a candidate
    over a limit is discarded before evaluation. Subnets with the same `equivalence` key (by
    default `space.canonical`; the scorer's `key` when some equivalent subnets are routed to
    different supernets) share one evaluation.
    """

    name: str = ""
    # Settings that may change on resume (how long to run); every other config key must match.
    resizable: tuple[str, ...] = ()

    def __init__(self, space: SearchSpace, *, seed: int = 0, max_flops: float | None = None,
                 max_params: float | None = None, top: int = 10, max_tries: int = 1000,
                 checkpoint: Checkpoint = None,
                 equivalence: Callable[[Subnet], Hashable] | None = None,
                 context: dict | None = None) -> None:
        if not isinstance(space, SearchSpace):
            raise UsageError(f"{self.name} search needs a SearchSpace, got {type(space).__name__}")
        for key, v in (("max_flops", max_flops), ("max_params", max_params)):
            if v is not None and not v > 0:
                raise UsageError(f"{self.name} search: {key} must be positive, got {v!r}")
        _positive(self.name, top=top, max_tries=max_tries)
        self.space = space
        self.equivalence = equivalence or space.canonical
        # What the objective depends on beyond the searcher (e.g. the supernet weights): a
        # state saved under another context is refused, never resumed with stale scores.
        self.context = dict(context or {})
        self.seed, self.max_flops, self.max_params = int(seed), max_flops, max_params
        self.top, self.max_tries, self.checkpoint = top, max_tries, checkpoint
        self.rng = random.Random(self.seed)
        self.generation = 0
        self.history: list[dict] = []
        self.cache: dict[Hashable, float] = {}  # equivalence key -> score
        self.rejected = 0  # candidates discarded for a FLOPs / parameter limit
        self._resumed = False

    # ---- what a strategy defines --------------------------------------------------------------
    @abstractmethod
    def propose(self) -> list[Subnet]:
        """The next batch: new (not yet evaluated) valid subnets within the limits; [] when
        nothing new can be found."""

    @abstractmethod
    def finished(self) -> bool:
        """Whether the search has spent its budget (generations, subnets)."""
        ...

    def config(self) -> dict:
        """Settings that define the search (saved with the state and checked on resume)."""
        return {"searcher": self.name, "space": self.space.describe(), "seed": self.seed,
                "max_flops": self.max_flops, "max_params": self.max_params,
                "context": self.context}

    # ---- candidates ---------------------------------------------------------------------------
    def within_limits(self, subnet: Subnet) -> bool:
        """Whether the subnet meets the FLOPs and parameter limits (those that are set)."""
        if self.max_flops is not None and self.space.flops(subnet) > self.max_flops:
            return False
        return self.max_params is None or self.space.params(subnet) <= self.max_params

    def accept(self, subnet: Subnet, batch: set[Hashable]) -> bool:
        """Whether `subnet` is a new, valid candidate within the limits; adds it to `batch`
        (a set of equivalence keys) when it is."""
        if not self.space.is_valid(subnet):
            return False
        key = self.equivalence(subnet)
        if key in self.cache or key in batch:
            return False
        if not self.within_limits(subnet):
            self.rejected += 1
            return False
        batch.add(key)
        return True

    def random_fill(self, out: list[Subnet], batch: set[Hashable], n: int) -> None:
        """Append random new candidates to `out` until it holds `n` (bounded tries)."""
        for _ in range(self.max_tries * max(1, n - len(out))):
            if len(out) >= n:
                return
            s = self.space.sample(self.rng)
            if self.accept(s, batch):
                out.append(s)

    def top_k(self, k: int) -> list[dict]:
        """The k best evaluated records; ties keep evaluation order (deterministic)."""
        order = sorted(range(len(self.history)),
                       key=lambda i: (-_rank_key(self.history[i]["score"]), i))
        return [self.history[i] for i in order[:k]]

    # ---- the loop -----------------------------------------------------------------------------
    def run(self, objective: Objective, *, on_generation: Callable[[dict], None] | None = None
            ) -> SearchResult:
        """Search until finished; resumes from a checkpoint path that already exists."""
        if isinstance(self.checkpoint, (str, os.PathLike)) and not self._resumed:
            path = Path(self.checkpoint)
            if path.exists():
                self.load_state_dict(_read_state(path))
                log.info("%s search: resuming %s at generation %d (%d evaluated)",
                         self.name, path, self.generation, len(self.history))
        while not self.finished():
            batch = self.propose()
            if not batch:
                log.info("%s search: no new candidate left in the space (or within the limits) "
                         "after %d evaluations; stopping", self.name, len(self.history))
                break
            self._evaluate(batch, objective)
            self.generation += 1
            self._save()
            self._report(len(batch), on_generation)
        return self.result()

    def _evaluate(self, batch: list[Subnet], objective: Objective) -> None:
        scores = list(objective(list(batch)))
        if len(scores) != len(batch):
            raise UsageError(f"the search objective returned {len(scores)} scores for "
                             f"{len(batch)} subnets")
        for s, score in zip(batch, scores, strict=True):
            score = float(score)
            self.cache[self.equivalence(s)] = score
            self.history.append({"subnet": list(s), "score": score, "generation": self.generation})

    def _save(self) -> None:
        if self.checkpoint is None:
            return
        if callable(self.checkpoint):
            self.checkpoint(self.state_dict())
        else:
            write_json_atomic(self.checkpoint, self.state_dict())

    def _report(self, new: int, on_generation: Callable[[dict], None] | None) -> None:
        top = self.top_k(self.top)
        best = top[0]
        info = {"generation": self.generation, "new": new, "evaluated": len(self.history),
                "best": best["score"], "best_subnet": self.space.format(tuple(best["subnet"])),
                "mean_top": sum(r["score"] for r in top) / len(top), "rejected": self.rejected}
        log.info("%s search: generation %d, %d evaluated, best %.4f, mean of top %d %.4f",
                 self.name, info["generation"], info["evaluated"], info["best"], len(top),
                 info["mean_top"])
        if on_generation is not None:
            on_generation(info)

    def result(self) -> SearchResult:
        """The search so far as a SearchResult: the `top` best evaluated candidates and the whole
        history."""
        top = []
        for rec in self.top_k(self.top):
            s = tuple(rec["subnet"])
            top.append(Candidate(s, self.space.format(s), rec["score"], int(self.space.flops(s)),
                                 int(self.space.params(s))))
        return SearchResult(top=top, history=[dict(r) for r in self.history],
                            generations=self.generation)

    # ---- resumable state ----------------------------------------------------------------------
    def state_dict(self) -> dict:
        """JSON-ready: configuration, generation, history and the RNG state."""
        version, internal, gauss = self.rng.getstate()
        return {"config": self.config(), "generation": self.generation,
                "rejected": self.rejected, "history": [dict(r) for r in self.history],
                "rng": [version, list(internal), gauss]}

    def load_state_dict(self, state: dict) -> None:
        """Resume from a saved state; raises CheckpointError when it is malformed or belongs to
        another search (settings other than the `resizable` ones differ)."""
        try:
            config, history = state["config"], state["history"]
            version, internal, gauss = state["rng"]
            generation = int(state["generation"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{self.name} search state is malformed ({e!r}); delete it to "
                                  "start the search afresh") from None
        mine = self.config()
        diff = sorted(k for k in set(mine) | set(config)
                      if k not in self.resizable and _jsonable(mine.get(k)) != config.get(k))
        if diff:
            k = diff[0]
            raise CheckpointError(
                f"search state belongs to another search: {k} is {config.get(k)!r} there and "
                f"{mine.get(k)!r} here; use the same settings or delete the state to start afresh")
        self.rng.setstate((version, tuple(internal), gauss))
        self.generation, self.rejected = generation, int(state.get("rejected", 0))
        self.history = [{"subnet": list(r["subnet"]), "score": float(r["score"]),
                         "generation": int(r["generation"])} for r in history]
        self.cache = {self.equivalence(tuple(r["subnet"])): r["score"] for r in self.history}
        self._resumed = True


def _jsonable(v: Any) -> Any:
    return json.loads(json.dumps(v))


def _read_state(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"search state {path} is unreadable ({e}); delete it to start "
                              "the search afresh") from None


def _positive(who: str, **values: int) -> None:
    for key, v in values.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise UsageError(f"{who} search: {key} must be a positive integer, got {v!r}")
