"""Ground truth built offline: stand-alone training of a stratified sample of subnets."""

from __future__ import annotations

import fcntl
import itertools
import json
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

from efsnas.api.split import Split
from efsnas.fileio import write_json_atomic


def stratified_sample(split: Split, per_subspace: int, *, seed: int = 0,
                      keep: Callable[[tuple], bool] | None = None) -> list[tuple]:
    """`per_subspace` subnets from each subspace (all of it when smaller), one per equivalence
    class so no two sampled cells compute the same function; deterministic for a seed. `keep`
    (e.g. a FLOPs limit) filters the candidates: the sample is then stratified over the subnets
    it keeps.

    The order is round-robin over the subspaces, and a larger `per_subspace` extends a smaller
    one (each subspace's classes are shuffled once and taken from the front): a ground truth can
    grow, and any prefix of its cells is stratified.
    """
    rng = random.Random(seed)
    space = split.space
    per_k = []
    for k in range(len(split)):
        if space.enumerable:
            reps = sorted({space.canonical(s) for s in split.members()[k]})
            rng.shuffle(reps)
            if keep is not None:
                reps = [r for r in reps if keep(r)]
            per_k.append(reps[:per_subspace])
        else:
            # each subspace draws from its own stream, so a larger sample extends a smaller
            # one subspace by subspace (one shared stream would shift every later subspace)
            k_rng = random.Random(f"stratified-{seed}-{k}")
            seen: dict = {}  # insertion-ordered, so prefixes stay stable
            for _ in range(per_subspace * 100):
                if len(seen) >= per_subspace:
                    break
                cell = space.canonical(split.sample(k, k_rng))
                if keep is None or keep(cell):
                    seen.setdefault(cell, None)
            per_k.append(list(seen))
    out = []
    for i in range(max(map(len, per_k), default=0)):
        out.extend(cells[i] for cells in per_k if i < len(cells))
    return out


def seed_to_seed_tau(per_seed: dict[str, dict[int, float]]) -> dict:
    """Kendall tau between the accuracies two seeds give the same cells (mean over seed pairs):
    the ranking signal the ground truth itself can carry."""
    seeds = sorted({s for v in per_seed.values() for s in v})
    taus = []
    for a, b in itertools.combinations(seeds, 2):
        cells = [c for c, v in per_seed.items() if a in v and b in v]
        if len(cells) >= 3:
            tau = kendalltau([per_seed[c][a] for c in cells], [per_seed[c][b] for c in cells])[0]
            taus.append({"seeds": [a, b], "cells": len(cells), "tau": float(tau)})
    mean = sum(t["tau"] for t in taus) / len(taus) if taus else None
    return {"mean": mean, "pairs": taus}


def _complete(per_seed: dict[str, dict[int, float]]) -> tuple[list[str], list[int], np.ndarray]:
    """The cells trained with every seed, and their accuracies as a (cells, seeds) array."""
    seeds = sorted({s for v in per_seed.values() for s in v})
    cells = sorted(c for c, v in per_seed.items() if all(s in v for s in seeds))
    acc = np.array([[per_seed[c][s] for s in seeds] for c in cells], dtype=float)
    return cells, seeds, acc.reshape(len(cells), len(seeds))


def split_half_tau(per_seed: dict[str, dict[int, float]]) -> dict:
    """Kendall tau between the seed-averaged accuracies of two disjoint halves of the seeds
    (every split into halves of sizes floor(S/2) and ceil(S/2), averaged): how well the
    ground truth agrees with an independent copy of itself of about half its size."""
    cells, seeds, acc = _complete(per_seed)
    if len(seeds) < 2 or len(cells) < 3:
        return {"mean": None, "splits": 0}
    taus = []
    idx = range(len(seeds))
    for half in itertools.combinations(idx, len(seeds) // 2):
        rest = [i for i in idx if i not in half]
        if len(half) == len(rest) and half > tuple(rest):
            continue  # the same split seen from the other side
        taus.append(float(kendalltau(acc[:, list(half)].mean(1), acc[:, rest].mean(1))[0]))
    return {"mean": float(np.mean(taus)), "splits": len(taus)}


def noise_ceiling(per_seed: dict[str, dict[int, float]], *, draws: int = 200,
                  seed: int = 0) -> dict:
    """The Kendall tau a perfect ranker (one that knows every cell's expected accuracy) would
    reach against the seed-averaged ground truth, estimated by simulation.

    Model: a cell's accuracy with seed s is mu_c + e_cs, e ~ N(0, sigma^2), sigma^2 pooled over
    cells from the seed-to-seed spread. The means' spread overstates the spread of mu by
    sigma^2 / S, so the means are shrunk toward their grand mean to the estimated variance of mu;
    then the ceiling is the mean tau between mu and mu + noise of the S-seed average.
    """
    cells, seeds, acc = _complete(per_seed)
    S = len(seeds)
    if S < 2 or len(cells) < 3:
        return {"tau": None, "noise_std": None}
    sigma2 = float(acc.var(axis=1, ddof=1).mean())
    mean = acc.mean(1)
    var_mean = float(mean.var(ddof=1))
    var_mu = max(var_mean - sigma2 / S, 1e-12)
    mu = mean.mean() + (mean - mean.mean()) * np.sqrt(var_mu / var_mean)
    rng = np.random.default_rng(seed)
    taus = [kendalltau(mu, mu + rng.normal(0.0, np.sqrt(sigma2 / S), len(mu)))[0]
            for _ in range(draws)]
    return {"tau": float(np.mean(taus)), "noise_std": float(np.sqrt(sigma2)),
            "spread_std": float(np.sqrt(var_mu)), "cells": len(cells), "seeds": S}


def plan(cells: list, seeds: list[int], *, format_cell: Callable[[tuple], str] = str,
         shard: tuple[int, int] = (0, 1)) -> list[tuple]:
    """The (cell, seed) trainings of one worker: cell by cell (so every finished cell has all its
    seeds), every n-th training of the whole plan for worker i of n."""
    i, n = shard
    everything = [(c, s) for c in cells for s in seeds]
    return [pair for j, pair in enumerate(everything) if j % n == i]


class RunsFile:
    """The trainings done so far, in one JSON file that several workers may add to at once: each
    addition re-reads the file under an exclusive lock and writes it back atomically."""

    def __init__(self, path: str | Path, identity: dict):
        self.path = Path(path)
        self.identity = identity
        self._lock = self.path.with_name(self.path.name + ".lock")

    def read(self) -> dict:
        if not self.path.exists():
            return {"config": self.identity, "runs": {}}
        with open(self.path) as f:
            return json.load(f)

    def add(self, key: str, record: dict) -> dict:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = self.read()
            state["runs"][key] = record
            write_json_atomic(self.path, state)
        return state


def build_ground_truth(todo: list[tuple], train_one: Callable[[tuple, int], dict], *,
                       done: Callable[[str], bool], save: Callable[[str, dict], None],
                       format_cell: Callable[[tuple], str] = str, log=print,
                       executor=None, rerun: str = "the same command") -> int:
    """Train every planned (cell, seed) not yet `done`, saving each as it finishes; resumable.
    With an `executor` (efsnas.parallel) the trainings run side by side and `train_one` must
    pickle; each is saved here as it comes back. Returns the number of trainings run."""
    from efsnas.parallel import run_jobs

    left = [(c, s) for c, s in todo if not done(f"{format_cell(c)}#{s}")]
    finished = itertools.count(1)

    def on_done(job, rec) -> None:
        cell, seed = job
        save(f"{format_cell(cell)}#{seed}", rec)
        log(f"[{next(finished)}/{len(left)}] {format_cell(cell)} seed {seed}: "
            f"{rec['top1']:.2f}% ({rec['seconds']:.1f}s)")

    run_jobs(train_one, left, executor=executor, on_done=on_done, rerun=rerun)
    return len(left)


def summarise_runs(runs: dict) -> tuple[dict[str, float], dict[str, dict[int, float]]]:
    per_seed: dict[str, dict[int, float]] = {}
    for key, rec in runs.items():
        cell, _, seed = key.rpartition("#")
        per_seed.setdefault(cell, {})[int(seed)] = rec["top1"]
    mean = {c: sum(v.values()) / len(v) for c, v in sorted(per_seed.items())}
    return mean, per_seed


def reliability(per_seed: dict[str, dict[int, float]]) -> dict:
    """Everything the meta file reports about how far the ground truth can be trusted."""
    return {"seed_to_seed_tau": seed_to_seed_tau(per_seed),
            "split_half_tau": split_half_tau(per_seed),
            "noise_ceiling": noise_ceiling(per_seed)}
