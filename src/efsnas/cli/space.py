"""`efsnas space`: summarise a search space and its split; write the cells grouped by count."""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict

from efsnas.app.config import DEFAULT_COMPONENTS
from efsnas.cli.common import (
    add_space_args,
    criterion_options,
    refuse_overwrite,
    space_kwargs,
    write_json_atomic,
)
from efsnas.errors import UsageError
from efsnas.registry import create_criterion, create_space, list_spaces


def add_parser(sub) -> argparse.ArgumentParser:
    """Add the `efsnas space` subcommand and its options to `sub`; returns its parser."""
    p = sub.add_parser("space", help="summarise a search space and its split",
                       description="Summarise a search space: cells, disconnected cells, "
                                   "equivalence classes, cells per nonlinearity count and per "
                                   "subspace of the chosen split.")
    p.add_argument("space", choices=list_spaces(), help="search space")
    p.add_argument("--criterion", default=DEFAULT_COMPONENTS["criterion"],
                   help="split criterion: nonlinearity, fsnas, oneshot (default nonlinearity)")
    p.add_argument("--groups", default=None,
                   help="count grouping for the nonlinearity split, e.g. '0,1/2/3'")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--groups-out", metavar="FILE",
                   help="write every cell listed by its count (keys: counts, values: sorted cells)")
    p.add_argument("--samples", type=int, default=20000,
                   help="subnets sampled for spaces too large to enumerate (default 20000)")
    p.add_argument("--draw", metavar="CELL", help="draw this subnet to --out instead of "
                                                  "summarising the space")
    p.add_argument("--out", metavar="FILE", help="picture file for --draw; the suffix gives the "
                                                 "format (.png, .svg, .pdf)")
    p.add_argument("--force", action="store_true",
                   help="overwrite an existing --out or --groups-out FILE")
    add_space_args(p)
    return p


def draw(space, args: argparse.Namespace) -> int:
    """`efsnas space --draw`: draw one subnet into the --out picture file."""

    from efsnas.draw import draw_subnet

    if not args.out:
        raise UsageError("--draw needs --out FILE (.png, .svg or .pdf)")
    refuse_overwrite(args.out, force=args.force)
    draw_subnet(space, args.draw, args.out)
    print(f"written: {args.out}")
    return 0


def summarise(space, split, *, samples: int = 20000) -> dict:
    """A space's size, validity, equivalence classes and subnets per count and per subspace of
    `split` (exact for an enumerable space, else from `samples` random subnets)."""
    import random

    if space.enumerable:
        subnets = list(space.enumerate())
        exact = True
    else:
        rng = random.Random(0)
        subnets = [space.sample(rng) for _ in range(samples)]
        exact = False
    valid = [s for s in subnets if space.is_valid(s)]
    counts = Counter(space.nonlinearity_count(s) for s in subnets)
    per_sub = Counter(split.route(s) for s in valid)
    out = {
        "space": space.describe(),
        "exact": exact,
        "subnets": space.size,
        space.invalid_word: len(subnets) - len(valid),
        "equivalence_classes": len({space.canonical(s) for s in valid}) + (
            1 if len(valid) < len(subnets) else 0) if exact else None,
        "per_count": {str(k): counts[k] for k in sorted(counts)},
        "split": split.describe(),
        "per_subspace": {split.subspaces[k].name: per_sub[k] for k in range(len(split))},
    }
    if not exact:
        out["sampled"] = samples
    return out


def run(args: argparse.Namespace) -> int:
    """Run `efsnas space` with the parsed arguments; returns the exit code."""
    space = create_space(args.space, **space_kwargs(args))
    if args.draw is not None:
        return draw(space, args)
    if args.out:
        raise UsageError("--out goes with --draw CELL")
    split = create_criterion(args.criterion, **criterion_options(args.criterion, args.groups)
                             ).split(space)
    summary = summarise(space, split, samples=args.samples)
    if args.groups_out:
        refuse_overwrite(args.groups_out, force=args.force, flag="--groups-out")
        groups = defaultdict(list)
        for s in space.enumerate():
            groups[str(space.nonlinearity_count(s))].append(space.format(s))
        write_json_atomic(args.groups_out, {k: sorted(v) for k, v in sorted(groups.items(),
                                            key=lambda kv: int(kv[0]))})
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(f"{space.name}: {summary['subnets']} subnets")
        for k, v in summary.items():
            if k not in ("space", "subnets"):
                print(f"  {k}: {v}")
        if args.groups_out:
            print(f"cells by count written to {args.groups_out}")
    return 0
