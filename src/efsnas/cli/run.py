"""`efsnas run`: the main job. Train the few-shot supernets, search, report the best subnet."""

from __future__ import annotations

import argparse
import time

from efsnas.cli.common import (
    add_config_args,
    add_ground_truth_args,
    add_parallel_args,
    config_from_args,
    ground_truth_from_args,
    write_json_atomic,
)


def add_parser(sub) -> argparse.ArgumentParser:
    """Add the `efsnas run` subcommand and its options to `sub`; returns its parser."""
    p = sub.add_parser(
        "run", help="train few-shot supernets, search, and report the best subnet (main job)",
        description="The main job: split the space by the number of nonlinear functions, train "
                    "one narrow supernet per subspace with supernet-balanced sampling, search "
                    "with each candidate scored by its own supernet, and write result.json. With "
                    "no arguments it runs a CPU-sized job on Fashion-MNIST (or scikit-learn's "
                    "digits when Fashion-MNIST is not installed). Rerun to resume.")
    add_config_args(p)
    add_ground_truth_args(p, purpose="report the true accuracy and rank of the top cells")
    add_parallel_args(p)  # the finalists' and the verification's retrainings
    return p


def run(args: argparse.Namespace) -> int:
    """Run `efsnas run` with the parsed arguments; returns the exit code."""
    from efsnas.app import Run
    from efsnas.app import answer as A
    from efsnas.cli.search import print_best
    from efsnas.parallel import resolve_workers

    t0 = time.time()
    cfg = config_from_args(args)
    st = Run.create(cfg, force=args.force)
    main = st.dist.is_main
    if main:
        print(f"data: {st.data.description}")
        print(f"space: {st.space.name} {st.space.describe()}; split: {st.split.criterion} "
              f"K={len(st.split)} G={st.split.width_divisor} "
              f"({', '.join(s.name for s in st.split.subspaces)}); sampler {cfg.train.sampler}; "
              f"device {st.device}")
    truth = ground_truth_from_args(args)  # before training: a bad file fails now
    workers = resolve_workers(args.workers, cfg.train.device) if main else 1
    with A.Retrainings(st, workers) as trainings:
        with trainings.sharing_cores():
            if trainings.pool is not None and cfg.verify.enabled:
                # the reference and random cells do not depend on the search: they train
                # beside the supernets
                A.submit_verification(st, A.verify_rows(st, None), trainings)
            train_summary = st.train()
        scorer = st.scorer()
        t1 = time.time()
        result = st.search(A.search_objective(st, scorer, trainings), truth=truth)
        if not main:
            return 0
        result.update({
            "data": st.data.description, "supernets": st.supernets.describe(),
            "train": train_summary, "search_seconds": time.time() - t1,
            "total_seconds": time.time() - t0, "run_dir": str(st.run_dir),
        })
        print_best(result)
        if result["best"] is not None:
            result["found"] = result["best"]  # the answer: the supernets' top-1, or ...
            if cfg.finalists.enabled:  # ... the finalist with the best held-out accuracy
                result.update(A.choose_finalists(st, result, trainings))
                _print_finalists(result)
            found = result["found"]
            _warn_if_degenerate(st.space, st.space.parse(found["cell"]))
            _draw_best(st, found)
            if cfg.verify.enabled:
                result["verification"] = A.verify_found(st, scorer, found, trainings,
                                                        finalists=result.get("finalists"))
    result["total_seconds"] = time.time() - t0
    write_json_atomic(st.files.result, result)
    print(f"results in {st.run_dir}/ (result.json, config.yaml, metrics.jsonl, checkpoint.pt); "
          f"{result['total_seconds']:.0f}s")
    return 0


def _print_finalists(result: dict) -> None:
    for i, r in enumerate(result["finalists"], 1):
        mark = "  <- the answer" if r["picked"] else ""
        print(f"finalist {i}: {r['cell']} supernet estimate {r['supernet_estimate']:.2f}%, "
              f"held-out {r['heldout_accuracy']:.2f}%{mark}")


def _warn_if_degenerate(space, subnet) -> None:
    canon = space.canonical(subnet)
    if canon != tuple(subnet):
        print(f"warning: some choices of the best subnet have no effect (dead edges or layers); "
              f"it computes the same function as {space.format(canon)}")
    if space.nonlinearity_count(subnet) == 0:
        print("warning: the best subnet has no nonlinear function on any path")


def _draw_best(st, best: dict) -> None:
    """best_cell.png and .svg in the run folder, where the space can draw its subnets."""
    from efsnas.draw import draw_subnet
    from efsnas.errors import UsageError

    title = (f"best {st.space.name} subnet of {st.run_dir.name}: supernet estimate "
             f"{best['supernet_estimate']:.2f}%, {best['flops'] / 1e6:.2f} MFLOPs")
    try:
        for suffix in ("png", "svg"):
            draw_subnet(st.space, st.space.parse(best["cell"]), st.run_dir / f"best_cell.{suffix}",
                        title=title)
    except UsageError as e:  # a plug-in space without a drawing
        print(f"note: no picture of the best subnet ({e})")
