"""`efsnas run`: the main job. Train the few-shot supernets, search, report the best subnet."""

from __future__ import annotations

import argparse
import time

from efsnas.cli.common import (
    add_config_args,
    add_ground_truth_args,
    config_from_args,
    ground_truth_from_args,
    write_json_atomic,
)


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "run", help="train few-shot supernets, search, and report the best subnet (main job)",
        description="The main job: split the space by the number of nonlinear functions, train "
                    "one narrow supernet per subspace with supernet-balanced sampling, search "
                    "with each candidate scored by its own supernet, and write result.json. With "
                    "no arguments it runs a CPU-sized job on Fashion-MNIST (or scikit-learn's "
                    "digits when Fashion-MNIST is not installed). Rerun to resume.")
    add_config_args(p)
    add_ground_truth_args(p, purpose="report the true accuracy and rank of the top cells")
    return p


def run(args: argparse.Namespace) -> int:
    from efsnas.app import Run
    from efsnas.cli.search import print_best

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
    train_summary = st.train()
    scorer = st.scorer()
    t1 = time.time()
    result = st.search(scorer, truth=truth)
    if not main:
        return 0
    result.update({
        "data": st.data.description, "supernets": st.supernets.describe(),
        "train": train_summary, "search_seconds": time.time() - t1,
        "total_seconds": time.time() - t0, "run_dir": str(st.run_dir),
    })
    print_best(result)
    if result["best"] is not None:
        _warn_if_degenerate(st.space, st.space.parse(result["best"]["cell"]))
        _draw_best(st, result["best"])
        if cfg.verify.enabled:
            result["verification"] = _verify(st, scorer, result["best"])
    result["total_seconds"] = time.time() - t0
    write_json_atomic(st.files.result, result)
    print(f"results in {st.run_dir}/ (result.json, config.yaml, metrics.jsonl, checkpoint.pt); "
          f"{result['total_seconds']:.0f}s")
    return 0


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


def _verify(st, scorer, best: dict) -> dict:
    """Retrain the found subnet and the references at the verification budget (resumable)."""
    from efsnas.app import verify as V
    from efsnas.app.run import describe_subnet
    from efsnas.export import retrained_path

    v, cfg = st.cfg.verify, st.cfg
    recipe = cfg.retrain.model_copy(update={
        k: getattr(v, k) for k in ("epochs", "max_train") if getattr(v, k) is not None})
    vcfg = cfg.model_copy(update={"retrain": recipe})
    rows = V.pick_subnets(st.space, st.space.parse(best["cell"]), random_subnets=v.random_subnets,
                          reference=v.reference, seed=cfg.search.seed + 1,
                          max_flops=cfg.search.max_flops * 1e6 if cfg.search.max_flops else None)
    print(f"verifying: retraining the found subnet and {len(rows) - 1} reference(s), "
          f"{recipe.epochs} epochs each, {v.seeds} seed(s)")

    def describe(subnet):
        k = st.split.route(subnet)
        return describe_subnet(st.space, subnet, subspace=st.split.subspaces[k].name,
                                        supernet_estimate=scorer.score([subnet])[0])

    def train_one(subnet, seed):  # weights kept for `efsnas export CELL RUN`
        return st.retrain(subnet, seed=seed, cfg=vcfg,
                          weights=retrained_path(st.run_dir, st.space, subnet, seed=seed))

    identity = {"retrain": recipe.model_dump(), "verify": v.model_dump(),
                "data": cfg.data.model_dump(), "space": cfg.space.identity()}
    out = V.verify(rows, train_one, seeds=[cfg.train.seed + i for i in range(v.seeds)],
                   describe=describe, path=st.files.verify, identity=identity)
    print(V.format_table(out))
    (st.files / st.files.VERIFY_TABLE).write_text(V.format_table(out, markdown=True) + "\n")
    return out
