"""`efsnas compare`: split criteria side by side at an equal budget, several seeds."""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

from efsnas.cli.common import (
    add_config_args,
    add_ground_truth_args,
    add_parallel_args,
    config_from_args,
    ground_truth_from_args,
    parse_shard,
    read_json,
    write_json_atomic,
)
from efsnas.errors import UsageError
from efsnas.fileio import write_atomic
from efsnas.parallel import run_jobs


def add_parser(sub) -> argparse.ArgumentParser:
    """Add the `efsnas compare` subcommand and its options to `sub`; returns its parser."""
    from efsnas.app.compare import variants  # one row per registered criterion

    p = sub.add_parser(
        "compare", help="train the split criteria at an equal budget and compare their ranking",
        description="Train each criterion (one-shot, FS-NAS, GM-NAS, this method with and "
                    "without SBS) for the same epochs on the same minibatches, score the same "
                    "cells with each, and print one table (Kendall tau all / top 1% / top 50%, "
                    "Spearman, ground-truth rank of each run's best cell, training and split "
                    "cost), plus a bar chart. Every run is resumable; rerun to continue. The "
                    "table is recomputed from the saved scores, so a rerun with a newer ground "
                    "truth trains nothing.")
    add_ground_truth_args(p, purpose="the table's true accuracies (a JSON file may come from "
                                     "`efsnas groundtruth build`, and need not exist yet)")
    p.add_argument("--cells", metavar="FILE",
                   help="JSON list of cells to score (default: the ground truth's cells); lets "
                        "training start before the ground truth is finished")
    p.add_argument("--criteria", default=",".join(variants()),
                   help=f"comma-separated, from: {', '.join(variants())}")
    p.add_argument("--variant", action="append", default=[], metavar="NAME:BASE;KEY=VALUE;...",
                   help="an extra row: a built-in criterion with settings on top, e.g. "
                        "'separate:nonlinearity;split.structure=separate' (repeatable)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per criterion (default 3)")
    p.add_argument("--budget", type=_budgets, default=("equal",), metavar="B[,B...]",
                   help="equal: every criterion trains the same epochs on the same minibatches; "
                        "passes: every row makes as many subnet passes (minibatch forward/"
                        "backward) as this method with SBS at the equal budget, so one-subnet-"
                        "a-step rows train K times as many steps; published: each criterion's "
                        "own recipe (FS-NAS and GM-NAS train every sub-supernet for the whole "
                        "schedule). Several, comma-separated: one subfolder and table per "
                        "budget, and the quality-vs-cost figure over all of them. The cost "
                        "columns say what each row spent")
    p.add_argument("--shard", type=parse_shard, default=None, metavar="I/N",
                   help="train only every N-th run (budget x row x seed), starting at I: run N "
                        "processes (0/N ... N-1/N) on the same --out to use N cores or N "
                        "machines; a last call without --shard writes the tables")
    add_parallel_args(p, cluster=True)
    add_config_args(p, default_preset="compare", without=("criterion",))
    return p


def _budgets(text: str) -> tuple[str, ...]:
    from efsnas.app.compare import BUDGETS

    out = tuple(dict.fromkeys(b.strip() for b in text.split(",") if b.strip()))
    bad = [b for b in out if b not in BUDGETS]
    if not out or bad:
        raise argparse.ArgumentTypeError(f"{text!r}: choose budgets from {', '.join(BUDGETS)} "
                                         "(comma-separated)")
    return out


def _cells(args, space, truth: dict[str, float] | None) -> list:
    if args.cells:
        texts = read_json(args.cells, "cell list")
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise UsageError(f"{args.cells} must hold a JSON list of cell strings")
    elif truth is not None:
        texts = sorted(truth)
    else:
        raise UsageError("give --ground-truth FILE (or --cells FILE to train and score first)")
    cells = [space.parse(t) for t in texts]
    cells = [c for c in cells if space.is_valid(c)]
    if not cells:
        raise UsageError(f"no valid {space.name} subnet to score")
    return cells


def run(args: argparse.Namespace) -> int:
    """Run `efsnas compare` with the parsed arguments; returns the exit code."""
    from efsnas.app import compare
    from efsnas.app import jobs as worker
    from efsnas.app.config import dump_config
    from efsnas.app.run import build_space, load_data
    from efsnas.evaluate.benchmark_files import is_official
    from efsnas.train.distributed import init_distributed

    names = [c.strip() for c in args.criteria.split(",") if c.strip()]
    rows = compare.variants()
    unknown = [c for c in names if c not in rows]
    if unknown:
        raise UsageError(f"unknown criteria {unknown}; choose from {', '.join(rows)}")
    variants = {n: rows[n] for n in names}
    for text in args.variant:
        name, v = compare.parse_variant(text)
        if name in variants:
            raise UsageError(f"--variant {name!r} names a row twice; give it another name")
        variants[name] = v
    names = list(variants)
    if args.seeds < 1:
        raise UsageError("--seeds must be at least 1")
    base = config_from_args(args)
    out = Path(args.out or base.out)
    _, device = init_distributed(base.train.device)
    data = load_data(base)
    space = build_space(base, data)
    truth = ground_truth_from_args(args, missing_ok=True)  # a bad file fails before training
    cells = _cells(args, space, truth)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "config.yaml", lambda f: f.write(dump_config(base)))
    budgets = args.budget
    print(f"data: {data.description}; {len(cells)} cells; criteria {names}; "
          f"{args.seeds} seed(s); budget(s) {', '.join(budgets)}; {base.train.epochs} epochs "
          "at the equal budget", flush=True)
    # Each budget's runs in its own folder when there are several (out/BUDGET/ROW/seedS), or
    # when out already holds that budget's folder: one budget of a study, rerun on its own.
    folder = {b: out / b if len(budgets) > 1 or (out / b).is_dir() else out for b in budgets}
    jobs = [(b, name, seed) for b in budgets for name in names for seed in range(args.seeds)]
    shard_i, shard_n = args.shard or (0, 1)
    # Runs whose training is the same in two budgets (this method at the passes budget is its
    # equal-budget run) train once; the shards share out the distinct trainings.
    plan, first = [], {}
    for budget, name, seed in jobs:
        run_dir = folder[budget] / name / f"seed{seed}"
        cfg = compare.variant_config(base, variants[name], base.train.seed + seed, run_dir,
                                     budget=budget, space=space)
        plan.append((budget, name, seed, run_dir, cfg))
        first.setdefault(_identity_key(cfg), run_dir)
    trainings = [job for job in plan if first[_identity_key(job[4])] == job[3]]
    texts = [space.format(c) for c in cells]
    todo = []  # (base, cfg, run dir, cells, train?, header): the arguments of jobs.compare_run
    for index, (budget, name, seed, run_dir, cfg) in enumerate(trainings):
        if index % shard_n != shard_i:
            continue
        scored = _reusable(run_dir, cfg, cells, space, force=args.force)
        if not (scored and worker.finalists_done(cfg, run_dir)):
            todo.append((base, cfg, str(run_dir), texts, not scored,
                         f"== {budget}/{name} seed {seed}: {variants[name].label} "
                         f"({cfg.train.epochs} epochs)"))

    def done(job, out) -> None:
        if "cost" in out:
            print(f"   {job[5][3:]}: trained in {out['cost']['train_seconds']:.0f}s, scored "
                  f"{out['scored']} cells in {out['cost']['score_seconds']:.0f}s", flush=True)
        if "finalists" in out:
            print(f"   {job[5][3:]}: finalist pick {out['finalists']['pick']}", flush=True)

    with _executor(args, base, out, len(todo)) as pool:
        if pool and len(todo) > 1:  # a one-shot run at the passes budget trains K times longer
            todo = compare.longest_first(todo, [compare.planned_flops(job[1], space, data)
                                                for job in todo])
        serial = functools.partial(worker.compare_run, data=data, space=space, device=device)
        run_jobs(worker.compare_run if pool else serial, todo, executor=pool, on_done=done,
                 rerun="the same efsnas compare command")
    for budget, name, seed, run_dir, cfg in plan:
        source = first[_identity_key(cfg)]
        if source != run_dir and (source / "scores.json").exists() \
                and not _reusable(run_dir, cfg, cells, space, force=args.force):
            run_dir.mkdir(parents=True, exist_ok=True)
            write_atomic(run_dir / "config.yaml", lambda f, cfg=cfg: f.write(dump_config(cfg)))
            _copy_run(source, run_dir)
            print(f"== {budget}/{name} seed {seed}: the same training as {source}, reused")
    if args.shard is not None and not all((folder[b] / n / f"seed{k}" / "scores.json").exists()
                                          for b, n, k in jobs):
        print(f"shard {shard_i}/{shard_n} done; when every shard is, rerun without --shard "
              "for the tables")
        return 0
    if args.ground_truth and not is_official(Path(args.ground_truth)):
        truth = ground_truth_from_args(args, missing_ok=True)  # it may have grown meanwhile
    if truth is None:
        print(f"scores written under {out}; rerun with --ground-truth FILE for the table")
        return 0
    studies = {}
    for b in budgets:
        runs = {n: [folder[b] / n / f"seed{k}" for k in range(args.seeds)] for n in names}
        studies[b] = _report(args, folder[b], names, runs, truth, data.description, base,
                             len(cells), budget=b, subspace_of=_count_subspaces(base, space),
                             labels={n: v.label for n, v in variants.items()})
    compare.cost_figure(studies, out / "quality_vs_cost.png")
    print(f"written: {out / 'quality_vs_cost.png'}")
    return 0


def _executor(args, base, out: Path, jobs: int):
    """The pool (or cluster executor) for `jobs` runs; a null context for one worker."""
    import contextlib

    from efsnas.parallel import cluster_executor, create_executor, resolve_workers

    if args.executor != "local":
        return cluster_executor(args.executor, folder=out / "jobs", partition=args.partition,
                                timeout_min=args.timeout_min, gpus=args.gpus)
    workers = min(resolve_workers(args.workers, base.train.device), max(1, jobs))
    return create_executor(workers, device=base.train.device) or contextlib.nullcontext()


def _identity_key(cfg) -> str:
    """Runs with equal keys train and score alike (the training identity leaves out the
    epochs, since a checkpoint may be trained further)."""
    return json.dumps([cfg.training_identity(), cfg.train.epochs, cfg.eval.model_dump()],
                      sort_keys=True, default=str)


def _copy_run(src: Path, dst: Path) -> None:
    """A finished run's cost and scores into another budget's folder (same training)."""
    cost = read_json(src / "cost.json", "cost")
    cost["reused_from"] = str(src)
    write_json_atomic(dst / "cost.json", cost)
    write_json_atomic(dst / "scores.json", read_json(src / "scores.json", "scores"))
    if (src / "finalists.json").exists():
        write_json_atomic(dst / "finalists.json", read_json(src / "finalists.json"))


def _reusable(run_dir: Path, cfg, cells: list, space, *, force: bool) -> bool:
    """Whether the run folder already holds this variant's scores of every cell. A folder
    trained with other settings is refused (or, with --force, cleared), never reused."""
    import shutil

    from efsnas.app.config import load_run_config

    if not (run_dir / "config.yaml").exists():
        return False
    old = load_run_config(run_dir)
    if (old.training_identity(), old.train.epochs, old.eval) != (
            cfg.training_identity(), cfg.train.epochs, cfg.eval):
        if not force:
            raise UsageError(f"{run_dir} holds a run with other settings; use another --out, or "
                             "--force to retrain it")
        shutil.rmtree(run_dir)
        return False
    if not (run_dir / "scores.json").exists():
        return False
    scored = read_json(run_dir / "scores.json", "scores")["scores"]
    return all(space.format(c) in scored for c in cells)


def _finalist_rank(run_dir: Path, truth: dict[str, float]) -> int | None:
    """The ground-truth rank of the run's finalist pick, counted as the top-1's `best_rank`
    (1 + the truth's cells strictly better)."""
    import math

    path = run_dir / "finalists.json"
    pick = read_json(path, "finalists").get("pick") if path.exists() else None
    if pick not in truth:
        return None
    acc = float(truth[pick])
    return 1 + sum(1 for v in truth.values() if math.isfinite(float(v)) and float(v) > acc)


def _count_subspaces(base, space):
    """Cell text -> its subspace under the run's nonlinearity grouping: the one view in which
    every criterion's ranking can be diagnosed alike."""
    from efsnas.split.criteria import NonlinearityCountSplit

    split = NonlinearityCountSplit(groups=base.split.groups).split(space)
    return lambda cell: split.subspaces[split.route(space.parse(cell))].name


def _report(args, out: Path, names, runs: dict[str, list[Path]], truth: dict[str, float],
            data_desc: str, base, n_cells: int, *, budget: str, subspace_of=None,
            labels: dict | None = None) -> dict:
    """Write one budget's compare.json, compare.md and bar chart; return the compare.json."""
    from efsnas.app import compare
    from efsnas.evaluate.ranking import correlate

    rows: dict[str, list[dict]] = {}
    for name in names:
        for run_dir in runs[name]:
            scores = read_json(run_dir / "scores.json", "scores")["scores"]
            ranking = correlate(scores, truth, subspace_of=subspace_of)
            summary = compare.summarise(read_json(run_dir / "cost.json", "cost"), ranking)
            summary["finalist_rank"] = _finalist_rank(run_dir, truth)
            write_json_atomic(run_dir / "eval.json", {"summary": summary, "ranking": ranking})
            rows.setdefault(name, []).append(summary)
    agg = compare.aggregate(rows)
    table = compare.markdown_table(agg)
    study = {
        "ground_truth": args.ground_truth, "ground_truth_dataset": args.dataset,
        "ground_truth_metric": args.metric, "cells": n_cells, "seeds": args.seeds,
        "budget": budget,
        "data": data_desc, "config": base.model_dump(),
        "variants": {n: (labels or {}).get(n) for n in names}, "criteria": agg, "runs": rows}
    write_json_atomic(out / "compare.json", study)
    write_atomic(out / "compare.md", lambda f: f.write(
        f"Budget: {budget}. Mean ± standard error over {args.seeds} seed(s).\n\n{table}\n"))
    compare.bar_chart(agg, out / "compare.png")
    print(f"-- budget {budget}")
    print(table)
    print(f"written: {out / 'compare.json'}, {out / 'compare.md'}, {out / 'compare.png'}")
    print(json.dumps({n: round(a["tau_all"]["mean"], 4) for n, a in agg.items()
                      if "tau_all" in a}))
    return study
