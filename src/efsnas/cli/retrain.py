"""`efsnas retrain`: train a subnet stand-alone and report its test accuracy."""

from __future__ import annotations

import argparse
from pathlib import Path

from efsnas.cli.common import add_config_args, read_json, write_json_atomic
from efsnas.errors import UsageError


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "retrain", help="train one subnet stand-alone (the found one, or any given)",
        description="Train a subnet as a stand-alone network with the retrain recipe "
                    "(config section `retrain`) and report its top-1 on the test set (the "
                    "held-out part when the dataset has no test set).")
    p.add_argument("targets", nargs="*", metavar="RUN|CELL",
                   help="a run folder (its config, and by default its best subnet from "
                        "result.json) and/or a subnet in text form, in either order")
    p.add_argument("--run", metavar="RUN", help=argparse.SUPPRESS)  # the older spelling
    p.add_argument("--seeds", type=int, default=1, help="independent trainings (default 1)")
    add_config_args(p, default_preset="default")
    p._option_string_actions["--epochs"].help = "retraining epochs (retrain.epochs)"
    return p


def _targets(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """(run folder, cell) from the positional arguments: a folder is the run."""
    run, cell = args.run, None
    for t in args.targets:
        if Path(t).is_dir():
            if run is not None:
                raise UsageError(f"two run folders given ({run}, {t}); give one")
            run = t
        elif cell is None:
            cell = t
        else:
            raise UsageError(f"two subnets given ({cell[:40]}, {t[:40]}); retrain one at a time, "
                             "or a run folder that does not exist")
    return run, cell


def _answer_cell(path: Path) -> str:
    """The run's answer (the finalists' pick, else the supernets' top-1) from its result.json."""
    result = read_json(path, "search result")
    entry = (result.get("found") or result.get("best")) if isinstance(result, dict) else None
    cell = entry.get("cell") if isinstance(entry, dict) else None
    if not isinstance(cell, str):
        raise UsageError(f"{path} names no searched subnet (no found/best entry with a 'cell' "
                         "string); run `efsnas search` on the run folder, or give the subnet")
    return cell


def run(args: argparse.Namespace) -> int:
    from efsnas.app.config import load_config, load_run_config
    from efsnas.app.run import build_space, execution_for, load_data, retrain_subnet
    from efsnas.cli.common import SHORTCUTS, shortcut_overrides
    from efsnas.export import retrained_path
    from efsnas.train.distributed import init_distributed

    if args.seeds < 1:
        raise UsageError("--seeds must be at least 1")
    args.run, text = _targets(args)
    shortcuts = {**SHORTCUTS, "epochs": "retrain.epochs"}  # here --epochs means retraining's
    if args.run:
        if args.config or args.preset != "default":
            raise UsageError("--preset and --config do not apply with --run (the run folder's "
                             "config is used); change settings with --set or the flags")
        cfg = load_run_config(args.run, shortcut_overrides(args, shortcuts) + args.set)
        out_dir = Path(args.out or args.run)
    else:
        cfg = load_config(preset=args.preset, path=args.config,
                          overrides=shortcut_overrides(args, shortcuts) + args.set)
        out_dir = Path(args.out or cfg.out)
    if text is None:
        if not args.run:
            raise UsageError("give a subnet to retrain, or --run RUN to retrain its best subnet")
        text = _answer_cell(Path(args.run) / "result.json")
    dist, device = init_distributed(cfg.train.device)
    ds = load_data(cfg)
    space = build_space(cfg, ds)
    subnet = space.parse(text)
    if not space.is_valid(subnet):
        raise UsageError(f"{text} is not a valid {space.name} subnet (e.g. disconnected)")
    record = out_dir / "retrain.json"
    if record.exists() and not args.force:
        old = read_json(record, "retraining record")
        if (not isinstance(old, dict) or old.get("cell") != space.format(subnet)
                or old.get("recipe") != cfg.retrain.model_dump()):
            raise UsageError(f"{record} holds the retraining of another subnet or recipe; use "
                             "another --out, or --force to replace it")
    seeds = [cfg.train.seed + i for i in range(args.seeds)]
    weights = [retrained_path(out_dir, space, subnet, seed=s) for s in seeds]
    execution = execution_for(cfg, space, device)
    runs = [retrain_subnet(cfg, space, ds, subnet, seed=s, execution=execution,
                           progress=cfg.train.progress, weights=w, dist=dist)
            for s, w in zip(seeds, weights)]
    if not dist.is_main:
        return 0
    for r, w in zip(runs, weights):
        r["weights"] = str(w)
    mean = sum(r["top1"] for r in runs) / len(runs)
    out = {"cell": space.format(subnet), "top1_mean": mean, "runs": runs,
           "recipe": cfg.retrain.model_dump(), "data": ds.description}
    write_json_atomic(record, out)
    print(f"{space.format(subnet)}: top-1 {mean:.2f}% on {runs[0]['evaluated_on']} "
          f"({len(runs)} seed(s)); FLOPs {runs[0]['flops']:,}, params {runs[0]['params']:,}")
    print(f"written: {out_dir / 'retrain.json'}; weights: {', '.join(map(str, weights))}")
    return 0
