"""`efsnas search`: evolutionary or random search with the supernets of a trained run."""

from __future__ import annotations

import argparse

from efsnas.cli.common import add_ground_truth_args, ground_truth_from_args, write_json_atomic
from efsnas.registry import names


def add_parser(sub) -> argparse.ArgumentParser:
    """Add the `efsnas search` subcommand and its options to `sub`; returns its parser."""
    p = sub.add_parser(
        "search", help="search a trained run's space (evolution or random), resumable",
        description="Search with every candidate scored by the supernet of its own subspace. "
                    "Seeded and resumable: the state is saved after each generation.")
    p.add_argument("run_dir", metavar="RUN", help="run folder of `efsnas train` / `efsnas run`")
    p.add_argument("--strategy", choices=names("searcher"), help="search.strategy")
    p.add_argument("--max-flops", type=float, help="MFLOPs limit (search.max_flops)")
    p.add_argument("--max-params", type=float, help="M parameters limit (search.max_params)")
    add_ground_truth_args(p, purpose="report the true accuracy and rank of the top cells")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                   help="override a setting of the run, e.g. --set search.generations=5")
    p.add_argument("--name", default="search",
                   help="result file stem (default: search); a new name starts a new search")
    return p


RESERVED = {"result", "config", "checkpoint", "metrics", "scores", "verify", "retrain",
            "best_cell"}


def _check_name(name: str) -> str:
    import re

    from efsnas.errors import UsageError

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name) or name in RESERVED:
        raise UsageError(f"--name {name[:40]!r}: use letters, digits, '_', '-' and '.' (no "
                         "path), and none of the run folder's own names "
                         f"({', '.join(sorted(RESERVED))})")
    return name


def run(args: argparse.Namespace) -> int:
    """Run `efsnas search` with the parsed arguments; returns the exit code."""
    from efsnas.app import Run

    _check_name(args.name)

    overrides = list(args.set)
    for flag, key in (("strategy", "search.strategy"), ("max_flops", "search.max_flops"),
                      ("max_params", "search.max_params")):
        if getattr(args, flag) is not None:
            overrides.append(f"{key}={getattr(args, flag)}")
    st = Run.open(args.run_dir, overrides=overrides)
    truth = ground_truth_from_args(args)
    scorer = st.scorer()
    result = st.search(scorer, truth=truth, name=args.name)
    result["config"] = st.cfg.search.model_dump()
    out = st.run_dir / f"{args.name}.json"
    if st.dist.is_main:
        write_json_atomic(out, result)
        print_best(result)
        print(f"written: {out}")
    return 0


def print_best(result: dict) -> None:
    """Print the search result's best cell with its supernet estimate, cost, count and subspace (and
    its true accuracy and rank when known)."""
    b = result["best"]
    if b is None:
        print("no candidate satisfied the limits")
        return
    line = (f"best: {b['cell']}\n  supernet estimate (held-out top-1 with shared weights) "
            f"{b['supernet_estimate']:.2f}%, "
            f"{b['flops'] / 1e6:.2f} MFLOPs, {b['params'] / 1e6:.3f} M params, "
            f"nonlinearity count {b['nonlinearity_count']} ({b['subspace']})")
    if "true_accuracy" in b:
        line += f"\n  true accuracy {b['true_accuracy']:.2f}% (rank {b['true_rank']})"
    print(line)
