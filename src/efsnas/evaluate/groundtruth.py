"""Ground truth built offline: stand-alone training of a stratified sample of subnets."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

from scipy.stats import kendalltau

from efsnas.api.split import Split


def stratified_sample(split: Split, per_subspace: int, *, seed: int = 0) -> list[tuple]:
    """`per_subspace` subnets from each subspace (all of it when smaller), one per equivalence
    class so no two sampled cells compute the same function; deterministic for a seed."""
    rng = random.Random(seed)
    space = split.space
    out = []
    for k in range(len(split)):
        if space.enumerable:
            reps = sorted({space.canonical(s) for s in split.members()[k]})
            out.extend(sorted(rng.sample(reps, min(per_subspace, len(reps)))))
        else:
            seen: set = set()
            for _ in range(per_subspace * 100):
                if len(seen) >= per_subspace:
                    break
                seen.add(space.canonical(split.sample(k, rng)))
            out.extend(sorted(seen))
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


def build_ground_truth(cells: list, seeds: list[int], train_one: Callable[[tuple, int], dict],
                       *, state: dict | None = None, save: Callable[[dict], None] | None = None,
                       format_cell: Callable[[tuple], str] = str, log=print) -> dict:
    """Train every (cell, seed) not yet in `state["runs"]`, saving after each; resumable."""
    state = state or {"runs": {}}
    runs = state.setdefault("runs", {})
    todo = [(c, s) for c in cells for s in seeds if f"{format_cell(c)}#{s}" not in runs]
    for i, (cell, seed) in enumerate(todo, 1):
        rec = train_one(cell, seed)
        runs[f"{format_cell(cell)}#{seed}"] = rec
        if save is not None:
            save(state)
        log(f"[{i}/{len(todo)}] {format_cell(cell)} seed {seed}: {rec['top1']:.2f}% "
            f"({rec['seconds']:.1f}s)")
    return state


def summarise_runs(runs: dict) -> tuple[dict[str, float], dict[str, dict[int, float]]]:
    per_seed: dict[str, dict[int, float]] = {}
    for key, rec in runs.items():
        cell, _, seed = key.rpartition("#")
        per_seed.setdefault(cell, {})[int(seed)] = rec["top1"]
    mean = {c: sum(v.values()) / len(v) for c, v in sorted(per_seed.items())}
    return mean, per_seed
