"""Work that runs alone in a worker process (efsnas.parallel) or, the same functions, in this
process when there is one worker: a stand-alone training, and one `compare` run.

A worker builds the data and the space from the config it is given, once per process (every
later job of the same config reuses them), and runs on its own device (`worker_device`).
Arguments and results are plain picklable values: configs, cell texts, paths, dicts.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from efsnas.app.config import RunConfig
from efsnas.parallel import worker_device

_CONTEXT: dict[str, tuple] = {}  # data and space per config, this process's


def context(cfg: RunConfig):
    """(data, space) for `cfg`, loaded once per process."""
    from efsnas.app.run import build_space, load_data

    key = json.dumps([cfg.data.model_dump(), cfg.train.seed, cfg.space.identity()],
                     sort_keys=True, default=str)
    if key not in _CONTEXT:
        data = load_data(cfg)
        _CONTEXT.clear()  # one data set at a time: a worker's memory is one job's
        _CONTEXT[key] = (data, build_space(cfg, data))
    return _CONTEXT[key]


def device_for(cfg: RunConfig):
    from efsnas.train.distributed import init_distributed

    return init_distributed(worker_device(cfg.train.device))[1]


def retrain(cfg: RunConfig, cell: str | tuple, seed: int, *, weights: str | None = None,
            evaluate: str = "test") -> dict:
    """`retrain_subnet` of `cell` (text or subnet) with `cfg`'s recipe, in whatever process
    runs it."""
    from efsnas.app.run import execution_for, retrain_subnet

    data, space = context(cfg)
    execution = execution_for(cfg, space, device_for(cfg))
    subnet = space.parse(cell) if isinstance(cell, str) else tuple(cell)
    return retrain_subnet(cfg, space, data, subnet, seed=seed, execution=execution,
                          weights=weights, evaluate=evaluate)


def compare_run(base: RunConfig, cfg: RunConfig, run_dir: str | Path, cells: list[str],
                train: bool = True, header: str = "", *, data=None, space=None, device=None,
                log=print) -> dict:
    """One `efsnas compare` run: train its supernets (`train`; else its scores are already
    in `run_dir`), score `cells` with them, then retrain its finalists. Writes cost.json,
    scores.json (which marks the run done) and finalists.json into `run_dir`, as the serial
    loop always has; returns what to report. `data`, `space`, `device`: the serial caller's
    own (a worker builds them from `base`)."""
    from efsnas.app import compare
    from efsnas.app.config import dump_config
    from efsnas.fileio import write_atomic, write_json_atomic

    if data is None:
        data, space = context(base)
        device = device_for(base)
    run_dir = Path(run_dir)
    out: dict = {}
    if train:
        print(header, flush=True)
        run_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(run_dir / "config.yaml", lambda f: f.write(dump_config(cfg)))
        nets, cost = compare.train_variant(cfg, data, space, device, run_dir, log=log)
        t0 = time.time()
        scores = compare.score_cells(nets, data, cfg, device, [space.parse(c) for c in cells])
        cost["score_seconds"] = time.time() - t0
        write_json_atomic(run_dir / "cost.json", cost)
        write_json_atomic(run_dir / "scores.json", {"scores": scores})  # marks the run done
        out.update(cost=cost, scored=len(scores))
    if cfg.finalists.enabled:
        scores = json.loads((run_dir / "scores.json").read_text())["scores"]
        from efsnas.app.run import execution_for

        execution = execution_for(cfg, space, device)
        out["finalists"] = compare_finalists(cfg, data, space, execution, scores, run_dir)
    return out


def compare_finalists(cfg: RunConfig, data, space, execution, scores: dict[str, float],
                      run_dir: Path) -> dict:
    """A compare run's finalists: its k best-scored cells retrained with the short recipe and
    tested on the held-out images; finalists.json records them and the pick."""
    from efsnas.app import finalists as F
    from efsnas.app.run import retrain_subnet

    order = sorted(scores, key=lambda c: (-scores[c], c))[:cfg.finalists.k]
    candidates = [{"cell": c, "supernet_estimate": scores[c]} for c in order]
    fcfg, seed = F.recipe(cfg), cfg.train.seed
    runs = F.FinalistRuns(run_dir / F.FILE, F.identity(cfg))
    for c in candidates:
        if runs.key(c["cell"], seed) not in runs.runs:
            rec = retrain_subnet(fcfg, space, data, space.parse(c["cell"]), seed=seed,
                                 execution=execution, evaluate="heldout")
            runs.add(c["cell"], seed, rec)
    rows, pick = runs.choose(candidates, seed)
    return {"pick": pick["cell"], "rows": rows}


def finalists_done(cfg: RunConfig, run_dir: Path) -> bool:
    """Whether `run_dir` holds this config's finalists (or it wants none)."""
    from efsnas.app import finalists as F

    if not cfg.finalists.enabled:
        return True
    path = run_dir / F.FILE
    if not path.exists():
        return False
    state = json.loads(path.read_text())
    return (state.get("identity") == json.loads(json.dumps(F.identity(cfg)))
            and state.get("k") == cfg.finalists.k and "pick" in state)
