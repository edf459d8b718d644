"""Benchmark the MobileNet space's supernets with efsnas.layers' batch norm against the same
supernets with PyTorch's own layers (efsnas.layers.to_plain), interleaved, one thread: scoring
a subnet and an SBS training step.

Scoring a subnet there is BN recalibration (`eval.bn: recalibrate`: 20 training batches of 500
in train mode) and a pass over the held-out images; the supernets' narrow layers (4-72
channels, half of them not a multiple of 8) are where PyTorch's channels_last batch norm is
slow. An SBS step runs one subnet through each of the K=6 supernets on a batch of 128. The
supernets are the MobileNet study's (`--preset mobilenet-cpu --set space.stem_stride=1`) at
their initial weights (the time of a pass does not depend on the weights). Writes JSON (default
benchmarks/results/mobilenet_bn.json): seconds per subnet scored and per step for both, the
ratios, and the largest differences of the scores (top-1 in points, loss).

    python benchmarks/mobilenet_bn.py [--subnets 4] [--steps 6] [--rounds 2] [--set KEY=VALUE]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import time

import torch

from efsnas.app import run as R
from efsnas.app.config import load_config
from efsnas.evaluate.scorer import SubnetScorer
from efsnas.execution import tune_cpu_allocator
from efsnas.layers import to_plain
from efsnas.train.step import train_step


def sbs_step_seconds(supernets, draws, batch) -> float:
    """Seconds per SBS step (one subnet per supernet, one optimizer step) over `draws`."""
    modules = [supernets.supernet(k) for k in range(len(supernets))]
    for m in modules:
        m.train()
    opt = torch.optim.SGD(supernets.parameters(), lr=0.01, momentum=0.9)
    x, y = batch
    train_step(modules, draws[0], x, y, opt)  # warm-up
    t0 = time.perf_counter()
    for d in draws[1:]:
        train_step(modules, d, x, y, opt)
    return (time.perf_counter() - t0) / (len(draws) - 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--subnets", type=int, default=4, help="subnets scored per round and side")
    p.add_argument("--steps", type=int, default=6, help="SBS steps timed per round and side")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--set", action="append", default=["space.stem_stride=1"],
                   help="config overrides (default: the study's space.stem_stride=1)")
    p.add_argument("--out", default="benchmarks/results/mobilenet_bn.json")
    a = p.parse_args()
    torch.set_num_threads(1)
    tune_cpu_allocator()
    cfg = load_config(preset="mobilenet-cpu", overrides=a.set)
    data = R.load_data(cfg)
    space = R.build_space(cfg, data)
    criterion = R.build_criterion(cfg)
    execution = R.execution_for(cfg, space, torch.device("cpu"))
    torch.manual_seed(0)
    ours = execution.module(R.build_supernets(cfg, criterion.split(space), criterion))
    plain = to_plain(ours)
    heldout = R.heldout_batches_for(cfg, data, execution)
    recal = R.recalibration_batches_for(cfg, data, execution)
    rng = random.Random(0)
    subnets = [space.sample(rng) for _ in range(a.subnets)]
    k = len(ours)
    draws = [[(j, space.sample(rng)) for j in range(k)] for _ in range(a.steps + 1)]
    batch = next(iter(data.train.batches(cfg.train.batch_size, shuffle=True, seed=0, epoch=0,
                                         channels_last=execution.channels_last)))
    seconds: dict[str, list[float]] = {"efsnas": [], "pytorch": []}
    step_seconds: dict[str, list[float]] = {"efsnas": [], "pytorch": []}
    scores: dict[str, list] = {}
    for r in range(a.rounds):
        order = ("pytorch", "efsnas") if r % 2 == 0 else ("efsnas", "pytorch")
        for side in order:
            nets = ours if side == "efsnas" else plain
            scorer = SubnetScorer(nets, heldout, bn=cfg.eval.bn, recal_batches=recal,
                                  execution=execution)
            t0 = time.perf_counter()
            scores[side] = [scorer.score_with_loss(s) for s in subnets]
            seconds[side].append((time.perf_counter() - t0) / len(subnets))
            step_seconds[side].append(sbs_step_seconds(nets, draws, batch))
            print(f"round {r + 1} {side}: {seconds[side][-1]:.2f} s a subnet scored, "
                  f"{step_seconds[side][-1]:.2f} s an SBS step", flush=True)
    ours_s, plain_s = statistics.median(seconds["efsnas"]), statistics.median(seconds["pytorch"])
    step_ratio = statistics.median(step_seconds["pytorch"]) / statistics.median(
        step_seconds["efsnas"])
    result = {
        "what": "seconds to score one subnet (BN recalibration + held-out pass) and per SBS "
                "step (K supernets, one subnet each), one thread; the supernets' initial "
                "weights, so the scores are near chance and the differences count ties",
        "config": a.set, "subnets": a.subnets, "steps": a.steps, "rounds": a.rounds,
        "efsnas_seconds": seconds["efsnas"], "pytorch_seconds": seconds["pytorch"],
        "speedup": plain_s / ours_s,
        "efsnas_step_seconds": step_seconds["efsnas"],
        "pytorch_step_seconds": step_seconds["pytorch"], "step_speedup": step_ratio,
        "max_top1_difference": max(abs(x[0] - y[0]) for x, y in zip(scores["efsnas"],
                                                                     scores["pytorch"])),
        "max_loss_difference": max(abs(x[1] - y[1]) for x, y in zip(scores["efsnas"],
                                                                     scores["pytorch"])),
        "torch": torch.__version__, "machine": {"platform": platform.platform()},
    }
    print(f"scoring: efsnas {ours_s:.2f} s, PyTorch's layers {plain_s:.2f} s a subnet: "
          f"{result['speedup']:.2f}x; scores differ by at most {result['max_top1_difference']:.2f}"
          f" points (loss {result['max_loss_difference']:.1e}); SBS step {step_ratio:.2f}x")
    with open(a.out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
