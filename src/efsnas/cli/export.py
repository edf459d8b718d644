"""`efsnas export`: write a cell's stand-alone network as TorchScript, ONNX or a state_dict."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from efsnas.errors import UsageError


def add_parser(sub) -> argparse.ArgumentParser:
    """Add the `efsnas export` subcommand and its options to `sub`; returns its parser."""
    from efsnas.export import FORMATS

    p = sub.add_parser(
        "export", help="export a subnet's stand-alone network (TorchScript, ONNX, state_dict)",
        description="Build the stand-alone network of CELL for the run RUN (its space, input "
                    "channels, classes and size), load its retrained weights from "
                    "RUN/retrained/ when `efsnas retrain` saved them (else random weights, said "
                    "on stderr), and write it in the format asked for.")
    p.add_argument("cell", help="subnet in text form")
    p.add_argument("run", metavar="RUN", help="run folder (holds config.yaml)")
    p.add_argument("--format", choices=FORMATS, default="torchscript",
                   help="torchscript (torch.jit.load), onnx (needs `pip install onnx`) or "
                        "state_dict (loads into the space's build_network); default torchscript")
    p.add_argument("--out", metavar="FILE", required=True, help="file to write")
    p.add_argument("--force", action="store_true", help="overwrite FILE when it exists")
    p.add_argument("--seed", type=int, default=None,
                   help="retraining seed whose weights to load (default: the lowest saved)")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                   help="override a setting of the run's config (repeatable)")
    return p


def run(args: argparse.Namespace) -> int:
    """Run `efsnas export` with the parsed arguments; returns the exit code."""
    import torch

    from efsnas import export
    from efsnas.app.config import load_run_config
    from efsnas.app.run import build_space, load_data

    out = Path(args.out)
    if out.exists() and not args.force:
        raise UsageError(f"{out} exists; add --force to overwrite it")
    if args.format == "onnx":
        export.require_onnx()  # before the data is loaded
    cfg = load_run_config(args.run, args.set)
    space = build_space(cfg, load_data(cfg))
    subnet = space.parse(args.cell)
    if not space.is_valid(subnet):
        raise UsageError(f"{args.cell} is not a valid {space.name} subnet (e.g. disconnected)")
    torch.manual_seed(cfg.train.seed)
    # retraining builds it with the recipe's dropout, which for nb201 renames the classifier
    net = space.build_network(subnet, dropout=cfg.retrain.dropout)
    weights = export.find_retrained(args.run, space, subnet, seed=args.seed)
    if weights is not None:
        export.load_weights(net, weights)
    elif args.seed is not None:
        raise UsageError(f"no weights of {space.format(subnet)} retrained with seed {args.seed} "
                         f"in {Path(args.run) / 'retrained'}")
    else:
        print(f"efsnas export: note: no retrained weights of this subnet in "
              f"{Path(args.run) / 'retrained'} (`efsnas retrain CELL --run {args.run}` saves "
              "them); exporting randomly initialised weights", file=sys.stderr)
    export.export_network(space, net, out, format=args.format)
    print(f"written: {out} ({args.format}, "
          f"{f'weights {weights}' if weights else 'random weights'})")
    return 0
