"""`efsnas groundtruth build`: train a stratified sample of subnets stand-alone -> ground truth."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from efsnas.cli.common import add_config_args, config_from_args, write_json_atomic


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("groundtruth", help="build a ground truth offline by stand-alone training",
                       description="Ground-truth tools.")
    gsub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = gsub.add_parser(
        "build", help="train a stratified sample of cells stand-alone, several seeds each",
        description="Train a stratified sample of subnets (equal numbers per subspace of the "
                    "split, one per equivalence class) stand-alone with the retrain recipe, "
                    "several seeds each, and write a ground truth JSON mapping subnet -> mean "
                    "top-1 (the shape of the NAS-Bench-201 accuracy file). Resumable cell by "
                    "cell; reports the seed-to-seed Kendall tau.")
    b.add_argument("output", metavar="FILE", help="ground truth JSON to write")
    b.add_argument("--per-subspace", type=int, default=70, help="cells per subspace (default 70)")
    b.add_argument("--seeds", type=int, default=2, help="trainings per cell (default 2)")
    b.add_argument("--sample-seed", type=int, default=0, help="seed of the stratified sample")
    add_config_args(b, default_preset="groundtruth")
    return p


def run(args: argparse.Namespace) -> int:
    from efsnas import pipeline
    from efsnas.cli.common import read_json
    from efsnas.evaluate.groundtruth import (
        build_ground_truth,
        seed_to_seed_tau,
        stratified_sample,
        summarise_runs,
    )
    from efsnas.train.distributed import init_distributed

    cfg = config_from_args(args)
    out = Path(args.output)
    state_path = out.with_name(out.stem + ".runs.json")
    _, device = init_distributed(cfg.train.device)
    data = pipeline.load_data_for(cfg)
    space = pipeline.build_space(cfg, data)
    split = pipeline.build_split(cfg, space)
    cells = stratified_sample(split, args.per_subspace, seed=args.sample_seed)
    seeds = list(range(args.seeds))
    state = read_json(state_path, "ground-truth state") if state_path.exists() else None
    if state and state.get("config") != cfg.model_dump(exclude={"out", "search", "eval"}):
        from efsnas.errors import UsageError

        if not args.force:
            raise UsageError(f"{state_path} was built with another configuration; use another "
                             "output file or --force")
        state = None
    state = state or {"config": cfg.model_dump(exclude={"out", "search", "eval"}), "runs": {}}
    # The planned sample, so other steps (efsnas compare --cells) can start before it is done.
    write_json_atomic(out.with_name(out.stem + ".cells.json"), [space.format(c) for c in cells])
    print(f"data: {data.description}; {len(cells)} cells x {len(seeds)} seeds "
          f"({len(state['runs'])} trainings already done)")

    def train_one(cell, seed):
        return pipeline.retrain_subnet(cfg, space, data, cell, seed=seed, device=device)

    state = build_ground_truth(cells, seeds, train_one, state=state, format_cell=space.format,
                               save=lambda s: write_json_atomic(state_path, s))
    wanted = {space.format(c) for c in cells}
    runs = {k: v for k, v in state["runs"].items() if k.rpartition("#")[0] in wanted}
    mean, per_seed = summarise_runs(runs)
    tau = seed_to_seed_tau(per_seed)
    write_json_atomic(out, mean)
    meta = {
        "ground_truth": str(out), "cells": len(mean), "seeds": seeds,
        "per_subspace": {split.subspaces[k].name: sum(1 for c in cells if split.route(c) == k)
                         for k in range(len(split))},
        "seed_to_seed_tau": tau, "data": data.description,
        "train_seconds": sum(r["seconds"] for r in runs.values()),
        "per_seed": per_seed,
    }
    write_json_atomic(out.with_name(out.stem + ".meta.json"), meta)
    t = tau["mean"]
    print(f"ground truth of {len(mean)} cells: {out}; seed-to-seed Kendall tau "
          f"{'n/a' if t is None else f'{t:.3f}'}")
    print(json.dumps({"seed_to_seed_tau": t, "cells": len(mean)}))
    return 0
