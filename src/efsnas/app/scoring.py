"""Scoring many subnets on several single-thread processes (efsnas.parallel's pool).

A worker opens the run's trained supernets from its checkpoint once (every later job of the
same run and weights reuses them) and scores the class representatives it is sent. The caller
sends each equivalence class once, so the forward passes are those of the serial scorer, and a
worker computes what a single-thread scorer in this process would: the scores are the serial
run's at one thread.

    results = score_on_pool(scorer, subnets, cfg=cfg, run_dir=run_dir, fingerprint=fp,
                            executor=pool, workers=2, done=done, on_chunk=save)  # evaluate
    objective = PooledObjective(scorer, cfg=cfg, run_dir=run_dir, fingerprint=fp,
                                executor=pool, workers=2)                 # the search
"""

from __future__ import annotations

import concurrent.futures as cf
import json
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch

from efsnas.api.search_space import Subnet
from efsnas.app.config import RunConfig
from efsnas.evaluate.scorer import SubnetScorer, gc_paused
from efsnas.parallel import worker_error

_SCORERS: dict[str, SubnetScorer] = {}  # this worker's scorer, per run and weights


def score_job(cfg: RunConfig, run_dir: str, fingerprint: str, cells: list[str]
              ) -> tuple[list[tuple[float, float]], int]:
    """In a worker: (top1, loss) of each cell with the trained supernets of `run_dir` (whose
    checkpoint has `fingerprint`), and the forward passes run."""
    from efsnas.app import jobs
    from efsnas.app.files import RunFiles
    from efsnas.app.run import (
        execution_for,
        heldout_batches_for,
        load_trained_supernets,
        recalibration_batches_for,
    )

    key = json.dumps([str(run_dir), fingerprint, cfg.model_dump(mode="json")], sort_keys=True)
    if key not in _SCORERS:
        data, space = jobs.context(cfg)
        execution = execution_for(cfg, space, jobs.device_for(cfg))
        nets = execution.module(load_trained_supernets(cfg, space, RunFiles(run_dir)))
        _SCORERS.clear()  # one run's supernets at a time
        _SCORERS[key] = SubnetScorer(
            nets, heldout_batches_for(cfg, data, execution), bn=cfg.eval.bn,
            recal_batches=recalibration_batches_for(cfg, data, execution), execution=execution)
    scorer = _SCORERS[key]
    before = scorer.evaluated
    with gc_paused():
        out = [scorer.score_with_loss(scorer.space.parse(c)) for c in cells]
    return out, scorer.evaluated - before


def _new_classes(scorer: SubnetScorer, keyed: Sequence[tuple]) -> dict:
    """Class key -> the first item of that class, from (item, key) pairs, for the classes not
    scored yet."""
    reps: dict = {}
    for item, k in keyed:
        if k not in scorer.cache:
            reps.setdefault(k, item)
    return reps


@contextmanager
def one_thread():
    """This process at one torch thread while the workers score beside it (the cores are
    theirs, and its arithmetic is then the workers')."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def score_on_pool(scorer: SubnetScorer, subnets: Sequence[Subnet], *, cfg: RunConfig,
                  run_dir: str | Path, fingerprint: str, executor: cf.Executor, workers: int,
                  done: dict | None = None, on_chunk: Callable[[dict], None] | None = None,
                  chunk: int = 200, rerun: str = "the same command") -> dict[str, dict]:
    """Every subnet's {"top1", "loss"} by text, the classes not in `done` scored on the pool
    in chunks; `on_chunk(results)` after each finished chunk (to save partial results). Forward
    passes are added to `scorer.evaluated`."""
    from efsnas.parallel import run_jobs

    space = scorer.space
    results = dict(done or {})
    for text, rec in results.items():  # scored before: no second pass
        scorer.cache.setdefault(scorer.key(space.parse(text)), (rec["top1"], rec["loss"]))
    todo = [(space.format(s), scorer.key(s)) for s in subnets
            if space.format(s) not in results]  # (text, class key), each computed once
    reps = _new_classes(scorer, todo)
    keys = list(reps)
    size = max(1, min(chunk, -(-len(keys) // (4 * workers))))  # >= 4 chunks a worker: balance
    jobs = [(cfg, str(run_dir), fingerprint, [reps[k] for k in keys[i:i + size]])
            for i in range(0, len(keys), size)]
    by_text = {reps[k]: k for k in keys}

    def finished(job, result) -> None:
        scores, passes = result
        for text, value in zip(job[3], scores, strict=True):
            scorer.cache[by_text[text]] = tuple(value)
        scorer.evaluated += passes
        if on_chunk is not None:
            on_chunk(_records(scorer, todo, results))

    run_jobs(score_job, jobs, executor=executor, on_done=finished, rerun=rerun)
    return _records(scorer, todo, results)


def _records(scorer: SubnetScorer, keyed: Sequence[tuple[str, tuple]], base: dict
             ) -> dict[str, dict]:
    out = dict(base)
    for text, k in keyed:
        value = scorer.cache.get(k)
        if value is not None:
            out[text] = {"top1": value[0], "loss": value[1]}
    return out


class PooledObjective:
    """The search objective (a batch of subnets -> top-1 each) with the batch's new classes
    split between this process and the pool's idle workers; with no idle worker (trainings
    still running) this process scores alone. Has the scorer's `key`, `score` and
    `evaluated`, so `Run.search` takes it in place of the scorer."""

    def __init__(self, scorer: SubnetScorer, *, cfg: RunConfig, run_dir: str | Path,
                 fingerprint: str, executor: cf.Executor, workers: int,
                 idle: Callable[[], bool] = lambda: True) -> None:
        self.scorer, self.cfg, self.run_dir = scorer, cfg, str(run_dir)
        self.fingerprint, self.executor, self.workers, self.idle = (fingerprint, executor,
                                                                     workers, idle)
        self.key = scorer.key

    @property
    def evaluated(self) -> int:
        """Forward passes over the held-out set, this process's and the workers'."""
        return self.scorer.evaluated

    def score(self, subnets: Sequence[Subnet]) -> list[float]:
        """Top-1 (%) of each subnet (the search objective)."""
        reps = list(_new_classes(self.scorer, [(s, self.key(s)) for s in subnets]).items())
        if len(reps) > 1 and self.idle():
            space = self.scorer.space
            share = -(-len(reps) // self.workers)  # this process takes the first share
            mine, theirs = reps[:share], reps[share:]
            futures = [(part, self.executor.submit(
                score_job, self.cfg, self.run_dir, self.fingerprint,
                [space.format(s) for _, s in part]))
                for part in (theirs[i:i + share] for i in range(0, len(theirs), share))]
            with one_thread(), gc_paused():
                for _, s in mine:
                    self.scorer.score_with_loss(s)  # cached, its pass counted
            for part, future in futures:
                try:
                    scores, passes = future.result()
                except Exception as e:  # a dead worker: one line naming the rerun
                    raise worker_error(e, "the same efsnas run command") from e
                for (k, _), value in zip(part, scores, strict=True):
                    self.scorer.cache[k] = tuple(value)
                self.scorer.evaluated += passes
        return self.scorer.score(subnets)
