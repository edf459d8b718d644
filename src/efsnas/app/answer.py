"""The main job's answer after the search: its finalists re-ranked by short stand-alone
training (efsnas.app.finalists), then the pick verified beside references (efsnas.app.verify).

Every retraining here is independent of the others, so `Retrainings` runs them in this
process (one worker) or on a pool of single-thread worker processes (efsnas.parallel), each
result saved as it finishes. With a pool, the verification's reference and random cells, which
do not depend on the search, start while the supernets train (`prelaunch`); only the finalists
and the found cell wait for the search. Every training seeds itself, so the results are those
of the serial run.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
from collections.abc import Callable
from contextlib import contextmanager

import torch

from efsnas.app import finalists as F
from efsnas.app import verify as V
from efsnas.parallel import Gate, cpu_cores, create_executor, worker_error

RERUN = "the same efsnas run command"


class Retrainings:
    """Stand-alone trainings of one run: `submit` returns a future; `on_done(record)` runs as
    each one finishes (in this process, one at a time), so finished work is saved at once.
    One worker: each training runs in this process when submitted (the serial order)."""

    def __init__(self, run, workers: int = 1) -> None:
        self.run = run
        pooled = workers > 1 and run.dist.world_size == 1
        self.pool = create_executor(workers, device=run.cfg.train.device) if pooled else None
        self.workers = workers if self.pool else 1
        self.gate = Gate(self.pool, self.workers, self._finished) if self.pool else None
        self._on_done: dict = {}

    def __enter__(self) -> Retrainings:
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=exc[0] is None, cancel_futures=exc[0] is not None)

    def _finished(self, key, record: dict) -> None:
        self._on_done.pop(key)(record)

    def submit(self, key, cfg, subnet, seed: int, *, on_done: Callable[[dict], None],
               weights=None, evaluate: str = "test", here: bool = False) -> cf.Future:
        """`retrain_subnet(cfg, subnet, seed)` once per `key` (a second submit of the same
        key gets the first one's future); `here`: in this process even with a pool, on this
        process's threads (a lone training while the workers idle)."""
        if self.gate is None or here:
            future: cf.Future = cf.Future()
            record = self.run.retrain(subnet, seed=seed, cfg=cfg, weights=weights,
                                      evaluate=evaluate)
            on_done(record)
            future.set_result(record)
            return future
        from efsnas.app import jobs

        if key not in self.gate.futures:
            self._on_done[key] = on_done
        fn = functools.partial(jobs.retrain, weights=None if weights is None else str(weights),
                               evaluate=evaluate)
        return self.gate.submit(key, fn, cfg, self.run.space.format(subnet), seed)

    @contextmanager
    def sharing_cores(self):
        """While this process trains the supernets: at most workers - 1 trainings run beside
        it, and it keeps the cores they leave (one thread each); all workers afterwards."""
        if self.gate is None:
            yield
            return
        before = torch.get_num_threads()
        self.gate.limit = max(1, self.workers - 1)
        if self.run.device.type == "cpu":
            torch.set_num_threads(max(1, min(before, cpu_cores() - self.gate.limit)))
        try:
            yield
        finally:
            torch.set_num_threads(before)
        self.gate.open(self.workers)  # (not after a failure: nothing more is started then)

    @staticmethod
    def wait(futures: list[cf.Future]) -> None:
        """Every future done; the first failure (a dead worker: a `WorkerError` naming the
        rerun) raised once all have finished, so every finished result is saved."""
        cf.wait(futures)
        for f in futures:
            if f.exception() is not None:
                raise worker_error(f.exception(), RERUN) from f.exception()


# ---- the search's objective -------------------------------------------------------------------

def search_objective(run, scorer, trainings: Retrainings):
    """The scorer itself (one worker), or each generation's new cells split between this
    process and the pool's workers whenever no training occupies them (efsnas.app.scoring):
    the scores of a single-thread scorer either way."""
    if trainings.pool is None:
        return scorer
    from efsnas.app.scoring import PooledObjective
    from efsnas.fileio import file_fingerprint

    return PooledObjective(scorer, cfg=run.cfg, run_dir=run.run_dir,
                           fingerprint=file_fingerprint(run.files.checkpoint),
                           executor=trainings.pool, workers=trainings.workers,
                           idle=trainings.gate.idle)


# ---- finalists -------------------------------------------------------------------------------

def choose_finalists(run, result: dict, trainings: Retrainings, *, log=print) -> dict:
    """The search's k best candidates (`result["top"]`), each retrained with the finalists'
    short recipe and tested on held-out images; finalists.json keeps every finished training
    (a rerun trains only what is missing). Returns what result.json gets: `finalists` (each
    with `heldout_accuracy` and `picked`), `pick` (the cell) and `found` (its record)."""
    cfg = run.cfg
    candidates = result["top"][:cfg.finalists.k]
    fcfg, seed = F.recipe(cfg), cfg.train.seed
    runs = F.FinalistRuns(run.files / F.FILE, F.identity(cfg))
    missing = [c for c in candidates if runs.key(c["cell"], seed) not in runs.runs]
    if missing:
        log(f"finalists: retraining the search's top {len(candidates)} "
            f"({len(missing)} to train), {fcfg.retrain.epochs} epoch(s) each, tested on "
            "held-out images")
    futures = []
    for i, c in enumerate(candidates, 1):
        if c in missing:
            def done(rec, c=c, i=i):
                runs.add(c["cell"], seed, rec)
                log(f"retrained finalist {i}/{len(candidates)} {c['cell']}: "
                    f"{rec['top1']:.2f}% held-out ({rec['seconds']:.0f}s)")

            futures.append(trainings.submit(("finalist", c["cell"], seed), fcfg,
                                            run.space.parse(c["cell"]), seed,
                                            evaluate="heldout", on_done=done))
    trainings.wait(futures)
    rows, pick = runs.choose(candidates, seed)
    rows = [{**r, "picked": r["cell"] == pick["cell"]} for r in rows]
    return {"finalists": rows, "pick": pick["cell"],
            "found": next(r for r in rows if r["picked"])}


def finalists_text(run, rows: list[dict]) -> str:
    """verify.md's paragraph: who the finalists were and why the pick won."""
    cfg = run.cfg
    n = len(run.data.train)
    limit = F.recipe(cfg).retrain.max_train
    n = min(n, limit) if limit else n
    pick = next(r for r in rows if r["picked"])
    return F.describe(rows, pick, cfg, n_train=n)


# ---- verification ----------------------------------------------------------------------------

def verify_recipe(cfg):
    """The run's config with the verification's retrain recipe."""
    v = cfg.verify
    recipe = cfg.retrain.model_copy(update={
        k: getattr(v, k) for k in ("epochs", "max_train") if getattr(v, k) is not None})
    return cfg.model_copy(update={"retrain": recipe})


def verify_identity(cfg) -> dict:
    vcfg = verify_recipe(cfg)
    return {"retrain": vcfg.retrain.model_dump(), "verify": cfg.verify.model_dump(),
            "data": cfg.data.model_dump(), "space": cfg.space.identity()}


def verify_rows(run, found) -> list[tuple[str, tuple]]:
    """The verification's (role, subnet) rows; `found` None: the reference and the random
    cells alone, which do not depend on the search."""
    cfg, v = run.cfg, run.cfg.verify
    return V.pick_subnets(run.space, found, random_subnets=v.random_subnets,
                          reference=v.reference, seed=cfg.search.seed + 1,
                          max_flops=cfg.search.max_flops * 1e6 if cfg.search.max_flops else None)


def submit_verification(run, rows, trainings: Retrainings, *, here: bool = False,
                        log=print) -> list[cf.Future]:
    """The rows' trainings not yet in verify.json, submitted (`here`: in this process, see
    `Retrainings.submit`); each saved there as it ends."""
    from efsnas.export import retrained_path

    cfg = run.cfg
    vcfg, identity = verify_recipe(cfg), verify_identity(cfg)
    store = V.VerifyRuns(run.files.verify, identity)
    futures = []
    for role, subnet in rows:
        cell = run.space.format(subnet)
        for seed in verify_seeds(cfg):
            if store.has(cell, seed):
                continue

            def done(rec, role=role, cell=cell, seed=seed):
                store.add(cell, seed, rec)
                log(f"retrained {role} {cell} (seed {seed}): {rec['top1']:.2f}% "
                    f"({rec['seconds']:.0f}s)")

            # weights kept for `efsnas export CELL RUN`
            futures.append(trainings.submit(
                ("verify", cell, seed), vcfg, subnet, seed, on_done=done, here=here,
                weights=retrained_path(run.run_dir, run.space, subnet, seed=seed)))
    return futures


def verify_seeds(cfg) -> list[int]:
    return [cfg.train.seed + i for i in range(cfg.verify.seeds)]


def verify_found(run, scorer, found: dict, trainings: Retrainings, *, finalists=None,
                 log=print) -> dict:
    """Retrain the found subnet and the references at the verification budget (resumable);
    verify.md gets the table, and with `finalists` what they were and why the pick won."""
    from efsnas.app.run import describe_subnet

    cfg = run.cfg
    rows = verify_rows(run, run.space.parse(found["cell"]))
    log(f"verifying: retraining the found subnet and {len(rows) - 1} reference(s), "
        f"{verify_recipe(cfg).retrain.epochs} epochs each, {cfg.verify.seeds} seed(s)")
    # The references first (with a pool they started beside the supernets and are usually
    # done), then the found cell. With one seed it is the last training left: it runs here,
    # on this process's threads, as a serial run trains it (a second thread makes a
    # stand-alone training about 1.5x faster, docs/benchmarks.md); several seeds share the pool.
    trainings.wait(submit_verification(run, rows[1:], trainings, log=log))
    lone = trainings.pool is not None and cfg.verify.seeds == 1
    trainings.wait(submit_verification(run, rows[:1], trainings, here=lone, log=log))

    def describe(subnet):
        k = run.split.route(subnet)
        return describe_subnet(run.space, subnet, subspace=run.split.subspaces[k].name,
                               supernet_estimate=scorer.score([subnet])[0])

    def trained_already(subnet, seed):
        raise AssertionError("every verification training is done before the table")

    out = V.verify(rows, trained_already, seeds=verify_seeds(cfg), describe=describe,
                   path=run.files.verify, identity=verify_identity(cfg), log=log)
    log(V.format_table(out))
    text = V.format_table(out, markdown=True) + "\n"
    if finalists:
        text += "\n" + finalists_text(run, finalists) + "\n"
    (run.files / run.files.VERIFY_TABLE).write_text(text)
    return out
