"""`efsnas train`: train the few-shot supernets of a run (resumable)."""

from __future__ import annotations

import argparse

from efsnas.cli.common import add_config_args, config_from_args, write_json_atomic


def add_parser(sub) -> argparse.ArgumentParser:
    """Add the `efsnas train` subcommand and its options to `sub`; returns its parser."""
    p = sub.add_parser(
        "train", help="train the few-shot supernets (resumes an interrupted run)",
        description="Train one supernet per subspace of the split. Rerunning the same command "
                    "resumes from the run folder's checkpoint. Works under torchrun.")
    add_config_args(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Run `efsnas train` with the parsed arguments; returns the exit code."""
    from efsnas.app import Run

    cfg = config_from_args(args)
    st = Run.create(cfg, force=args.force)
    if st.dist.is_main:
        print(f"data: {st.data.description}")
        print(f"split: {st.split.criterion}, K={len(st.split)}, G={st.split.width_divisor}, "
              f"{sum(p.numel() for p in st.supernets.parameters()):,} supernet parameters")
    summary = st.train()
    if st.dist.is_main:
        write_json_atomic(st.files / st.files.TRAIN_SUMMARY,
                          {**summary, **st.supernets.describe()})
        print(f"supernets trained: {st.files.checkpoint}")
    return 0
