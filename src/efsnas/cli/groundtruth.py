"""`efsnas groundtruth build`: train a stratified sample of subnets stand-alone -> ground truth."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
from pathlib import Path

from efsnas.cli.common import (
    add_config_args,
    add_parallel_args,
    config_from_args,
    parse_shard,
    write_json_atomic,
)
from efsnas.errors import UsageError


def add_parser(sub) -> argparse.ArgumentParser:
    """Add the `efsnas groundtruth` subcommand and its options to `sub`; returns its parser."""
    p = sub.add_parser("groundtruth", help="build a ground truth offline by stand-alone training",
                       description="Ground-truth tools.")
    gsub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = gsub.add_parser(
        "build", help="train a stratified sample of cells stand-alone, several seeds each",
        description="Train a stratified sample of subnets (equal numbers per subspace of the "
                    "split, one per equivalence class) stand-alone with the retrain recipe, "
                    "several seeds each, and write a ground truth JSON mapping subnet -> mean "
                    "top-1 over the seeds (the shape of the NAS-Bench-201 accuracy file; cells "
                    "with every seed done). Resumable training by training; a larger "
                    "--per-subspace extends an existing sample. FILE.meta.json reports the "
                    "seed-to-seed Kendall tau, the split-half tau and the noise ceiling.")
    b.add_argument("output", metavar="FILE", help="ground truth JSON to write")
    b.add_argument("--per-subspace", type=int, default=70, help="cells per subspace (default 70)")
    b.add_argument("--seeds", type=int, default=3, help="trainings per cell (default 3)")
    b.add_argument("--sample-seed", type=int, default=0, help="seed of the stratified sample")
    b.add_argument("--max-flops", type=float, metavar="MFLOPS",
                   help="sample only subnets of at most this many MFLOPs (the stand-alone "
                        "network's, as search.max_flops counts them); default: no limit")
    b.add_argument("--shard", type=parse_shard, default=(0, 1), metavar="I/N",
                   help="train only every N-th training of the plan, starting at I: run N "
                        "processes (0/N ... N-1/N) on the same FILE to use N cores; they share "
                        "one state file")
    add_parallel_args(b)
    add_config_args(b, default_preset="groundtruth")
    return p


def recipe(cfg, space, data, seeds: list[int]) -> dict:
    """What the ground truth measures, so it can be trusted and reused: the space and its
    options, the images, and the stand-alone training recipe."""
    r = cfg.retrain
    n_train = len(data.train) if r.max_train is None else min(r.max_train, len(data.train))
    return {
        "space": space.name, "space_options": dict(cfg.space.options),
        "image_size": cfg.data.image_size or cfg.space.input_size, "dataset": cfg.data.name,
        "training_images": n_train,
        "test_images": len(data.test) if data.test is not None else None,
        "epochs": r.epochs, "batch_size": r.batch_size, "lr": r.lr, "lr_min": r.lr_min,
        "weight_decay": r.weight_decay, "augment": cfg.data.augment, "seeds": seeds,
        "amp": cfg.train.amp,
    }


def run(args: argparse.Namespace) -> int:
    """Run `efsnas groundtruth` with the parsed arguments; returns the exit code."""
    from efsnas.app import jobs
    from efsnas.app.run import (
        build_criterion,
        build_space,
        execution_for,
        load_data,
        retrain_subnet,
    )
    from efsnas.evaluate.groundtruth import (
        RunsFile,
        build_ground_truth,
        plan,
        reliability,
        stratified_sample,
        summarise_runs,
    )
    from efsnas.parallel import create_executor, resolve_workers
    from efsnas.train.checkpoint import same_identity
    from efsnas.train.distributed import init_distributed

    if args.per_subspace < 1 or args.seeds < 1:
        raise UsageError("--per-subspace and --seeds must be at least 1")
    if args.max_flops is not None and not args.max_flops > 0:
        raise UsageError(f"--max-flops must be a positive number of MFLOPs, got {args.max_flops}")
    cfg = config_from_args(args)
    out = Path(args.output)
    # What a stand-alone training depends on (the supernet recipe in `train` does not count).
    identity = cfg.model_dump(include={"data", "retrain"})
    identity["space"] = cfg.space.identity()
    identity["split"] = cfg.split.model_dump(include={"criterion", "groups", "fsnas_position"})
    identity["train"] = cfg.train.model_dump(include={"seed", "amp", "amp_dtype",
                                                      "channels_last"})
    runs_file = RunsFile(out.with_name(out.stem + ".runs.json"), identity)
    try:
        state = runs_file.read()
    except (OSError, ValueError) as e:
        raise UsageError(f"{runs_file.path} cannot be read ({e}); move it away to start "
                         "afresh") from None
    if not same_identity(state.get("config") or {}, identity):
        if not args.force:
            raise UsageError(f"{runs_file.path} was built with another configuration; use "
                             "another output file or --force")
        runs_file.path.unlink()
    _, device = init_distributed(cfg.train.device)
    data = load_data(cfg)
    space = build_space(cfg, data)
    split = build_criterion(cfg).split(space)
    execution = execution_for(cfg, space, device)
    limit = args.max_flops
    keep = None if limit is None else (lambda cell: space.flops(cell) <= limit * 1e6)
    cells = stratified_sample(split, args.per_subspace, seed=args.sample_seed, keep=keep)
    if len(cells) < args.per_subspace * len(split) and limit is not None:
        short = [split.subspaces[k].name for k in range(len(split))
                 if sum(split.route(c) == k for c in cells) < args.per_subspace]
        print(f"note: under {limit:g} MFLOPs, subspace(s) {', '.join(short)} gave fewer than "
              f"{args.per_subspace} distinct cells")
    seeds = list(range(args.seeds))
    if out.exists() and not args.force:
        from efsnas.cli.common import read_json

        old = read_json(out, "ground truth")
        dropped = set(old) - {space.format(c) for c in cells} if isinstance(old, dict) else {1}
        if dropped:
            raise UsageError(f"{out} holds {len(dropped)} cell(s) this plan does not (a smaller "
                             "--per-subspace or another --sample-seed?); use another FILE, or "
                             "--force to replace it")
    # The planned sample, so other steps (efsnas compare --cells) can start before it is done.
    write_json_atomic(out.with_name(out.stem + ".cells.json"), [space.format(c) for c in cells])
    todo = plan(cells, seeds, format_cell=space.format, shard=args.shard)
    print(f"data: {data.description}; {len(cells)} cells x {len(seeds)} seeds; this worker "
          f"({args.shard[0]}/{args.shard[1]}) has {len(todo)} trainings, "
          f"{sum(f'{space.format(c)}#{s}' in state['runs'] for c, s in todo)} already done")

    def train_one(cell, seed):
        return retrain_subnet(cfg, space, data, cell, seed=seed, execution=execution)

    left = sum(f"{space.format(c)}#{s}" not in state["runs"] for c, s in todo)
    workers = min(resolve_workers(args.workers, cfg.train.device), max(1, left))
    with create_executor(workers, device=cfg.train.device) or contextlib.nullcontext() as pool:
        # a worker builds its own data and space from the config (efsnas.app.jobs)
        build_ground_truth(todo, functools.partial(jobs.retrain, cfg) if pool else train_one,
                           format_cell=space.format, done=lambda key: key in state["runs"],
                           save=lambda key, rec: runs_file.add(key, rec), executor=pool,
                           rerun="the same efsnas groundtruth build command")
    wanted = {space.format(c) for c in cells}
    runs = {k: v for k, v in runs_file.read()["runs"].items() if k.rpartition("#")[0] in wanted}
    _, per_seed = summarise_runs(runs)
    complete = {c: v for c, v in per_seed.items() if all(s in v for s in seeds)}
    mean = {c: sum(v.values()) / len(v) for c, v in sorted(complete.items())}
    rel = reliability(complete)
    write_json_atomic(out, mean)
    meta = {
        "ground_truth": str(out), "cells": len(mean), "planned_cells": len(cells),
        "seeds": seeds, "sample": {"seed": args.sample_seed, "max_flops": limit},
        "per_subspace": {split.subspaces[k].name: sum(1 for c in cells if split.route(c) == k)
                         for k in range(len(split))},
        **rel, "data": data.description, "recipe": recipe(cfg, space, data, seeds),
        "train_seconds": sum(r["seconds"] for r in runs.values()),
        "per_seed": per_seed,
    }
    write_json_atomic(out.with_name(out.stem + ".meta.json"), meta)

    def fmt(x):
        return "n/a" if x is None else f"{x:.3f}"

    print(f"ground truth of {len(mean)} of {len(cells)} cells (every seed done): {out}; "
          f"seed-to-seed Kendall tau {fmt(rel['seed_to_seed_tau']['mean'])}, split-half "
          f"{fmt(rel['split_half_tau']['mean'])}, noise ceiling {fmt(rel['noise_ceiling']['tau'])}")
    print(json.dumps({"seed_to_seed_tau": rel["seed_to_seed_tau"]["mean"],
                      "noise_ceiling": rel["noise_ceiling"]["tau"], "cells": len(mean)}))
    return 0
