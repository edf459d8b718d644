"""`efsnas evaluate`: score cells with their own supernets (a list, a sample, or all)."""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

from efsnas.cli.common import add_parallel_args, read_json, write_json_atomic
from efsnas.errors import UsageError


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "evaluate", help="score subnets with the supernets of a trained run",
        description="Score subnets by top-1 (and loss) on the held-out set, each with the "
                    "supernet of its own subspace; one forward pass per equivalence class. "
                    "Resumable: a killed evaluation continues where it stopped. Under torchrun "
                    "the subnets are sharded across ranks.")
    p.add_argument("run_dir", metavar="RUN", help="run folder of `efsnas train` / `efsnas run`")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--all", action="store_true", help="every valid subnet (enumerable spaces)")
    what.add_argument("--sample", type=int, metavar="N", help="N random valid subnets")
    what.add_argument("--cells", metavar="FILE",
                      help="JSON list of subnets in text form (or a mapping whose keys are)")
    p.add_argument("--out", "--output", dest="out", metavar="FILE",
                   help="default: RUN/scores.json")
    p.add_argument("--force", action="store_true",
                   help="overwrite an existing FILE that is not an efsnas scores file")
    p.add_argument("--bn", choices=["batch", "recalibrate"], help="BN statistics (eval.bn)")
    p.add_argument("--max-images", type=int, help="held-out images used (eval.max_images)")
    p.add_argument("--seed", type=int, default=0, help="seed of --sample")
    p.add_argument("--save-every", type=int, default=1000, metavar="N",
                   help="save partial results every N subnets (and every 30 s)")
    p.add_argument("--no-progress", action="store_true")
    add_parallel_args(p)  # scoring on a pool when there are at least POOLED classes to score
    return p


POOLED = 200  # fewer classes to score than this: one process (starting workers costs more)


def select_subnets(space, args) -> list:
    if args.cells:
        items = read_json(args.cells, "cell list")
        items = list(items) if isinstance(items, (list, dict)) else None
        if items is None or not all(isinstance(c, str) for c in items):
            raise UsageError(f"{args.cells} must hold a JSON list of subnet strings")
        subnets = [space.parse(c) for c in items]
        valid = [s for s in subnets if space.is_valid(s)]
        if len(valid) < len(subnets):  # as compare does: no network to build, nothing to score
            first = next(t for t, s in zip(items, subnets) if not space.is_valid(s))
            if not valid:
                raise UsageError(f"{args.cells} holds no valid {space.name} subnet (e.g. {first})")
            print(f"note: skipped {len(subnets) - len(valid)} subnet(s) of {args.cells} that are "
                  f"not valid {space.name} subnets (e.g. {first})", file=sys.stderr)
        return valid
    if args.sample:
        rng = random.Random(args.seed)
        if space.enumerable:
            pool = [s for s in space.enumerate() if space.is_valid(s)]
            return rng.sample(pool, min(args.sample, len(pool)))
        return [space.sample(rng) for _ in range(args.sample)]
    return [s for s in space.enumerate() if space.is_valid(s)]


def _previous(path: Path, context: dict, *, force: bool) -> dict:
    """Scores already in `path` computed under `context` (to resume from), else {}. A file
    that is no scores file is kept unless --force."""
    from efsnas.evaluate.scorer import scores_path_state

    if not path.exists():
        return {}
    try:
        import json

        data = json.loads(path.read_text())
        ours = isinstance(data, dict) and "scores" in data
    except (ValueError, UnicodeDecodeError):
        ours = False
    if not ours:
        if not force:
            raise UsageError(f"{path} exists and is not an efsnas scores file; choose another "
                             "--out, or add --force to overwrite it")
        return {}
    if data.get("meta", {}).get("context") != context:
        return {}  # computed from other weights or settings: recomputed, never reused
    return scores_path_state(path)


def run(args: argparse.Namespace) -> int:
    from efsnas.app import Run
    from efsnas.evaluate.scorer import gather_results, score_many
    from efsnas.fileio import file_fingerprint
    from efsnas.parallel import resolve_workers

    if args.sample is not None and args.sample < 1:
        raise UsageError(f"--sample must be at least 1, got {args.sample}; use --all for every "
                         "subnet")
    if args.max_images is not None and args.max_images < 1:
        raise UsageError(f"--max-images must be at least 1, got {args.max_images}")
    overrides = []
    if args.bn:
        overrides.append(f"eval.bn={args.bn}")
    if args.max_images:
        overrides.append(f"eval.max_images={args.max_images}")
    st = Run.open(args.run_dir, overrides=overrides)
    subnets = select_subnets(st.space, args)
    out = Path(args.out) if args.out else st.files / st.files.SCORES
    part = out.with_name(out.name + f".rank{st.dist.rank}.partial")
    # what the scores depend on: a partial or earlier file made under another is not reused
    context = {"supernets": file_fingerprint(st.files.checkpoint),
               "eval": st.cfg.eval.model_dump()}
    done = (_previous(part, context, force=True) if part.exists() else {}) or _previous(
        out, context, force=args.force)
    scorer = st.scorer()
    meta = {"run": str(st.run_dir), "bn": st.cfg.eval.bn,
            "images": sum(len(y) for _, y in scorer.batches), "context": context}

    def save(results):
        write_json_atomic(part, {"scores": {k: v["top1"] for k, v in results.items()},
                                 "loss": {k: v["loss"] for k, v in results.items()},
                                 "meta": {"context": context}})

    t0 = time.time()
    workers = resolve_workers(getattr(args, "workers", 1), st.cfg.train.device)
    todo = [s for s in subnets if st.space.format(s) not in done]
    if (workers > 1 and st.dist.world_size == 1
            and len({scorer.key(s) for s in todo}) >= POOLED):
        from efsnas.app.scoring import score_on_pool
        from efsnas.parallel import create_executor

        with create_executor(workers, device=st.cfg.train.device) as pool:
            results = score_on_pool(scorer, subnets, cfg=st.cfg, run_dir=st.run_dir,
                                    fingerprint=context["supernets"], executor=pool,
                                    workers=workers, done=done, on_chunk=save,
                                    rerun="the same efsnas evaluate command")
    else:
        results = score_many(scorer, subnets, done=done, checkpoint=save,
                             every_cells=max(1, args.save_every), rank=st.dist.rank,
                             world_size=st.dist.world_size,
                             progress=not args.no_progress and st.dist.is_main)
    results = gather_results(results, st.dist.world_size)
    wanted = {st.space.format(s) for s in subnets}
    results = {k: v for k, v in results.items() if k in wanted}
    if st.dist.is_main:
        write_json_atomic(out, {
            "scores": {k: v["top1"] for k, v in sorted(results.items())},
            "loss": {k: v["loss"] for k, v in sorted(results.items())},
            "meta": {**meta, "subnets": len(results), "forward_passes": scorer.evaluated,
                     "seconds": time.time() - t0},
        })
        print(f"scored {len(results)} subnets ({scorer.evaluated} forward passes, "
              f"{time.time() - t0:.1f}s): {out}")
    part.unlink(missing_ok=True)
    return 0
