"""Benchmark ranking every NAS-Bench-201 cell: time to score all 15,625 cells with a K=3, C=5,
N=5 supernet set on 512 and on 10,000 held-out 32x32 images (one forward pass per equivalence
class: 9,445 classes, the 341 disconnected cells share one).

The supernets are freshly initialised (the time of a forward pass does not depend on training).
Writes JSON (default benchmarks/results/rank_all.json).

    python benchmarks/rank_all.py [--device cpu|cuda] [--images 512,10000] [--cells 300,30]
                                  [--memory-format auto|contiguous|channels_last]

--cells N[,M] times the first N (M) classes only and extrapolates to all 9,444: on a CPU, scoring
every class on 10,000 images takes hours.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from efsnas import create_criterion, create_space
from efsnas.evaluate.scorer import SubnetScorer
from efsnas.execution import Execution, channels_last_for, tune_cpu_allocator
from efsnas.supernets import FewShotSupernets


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--images", default="512,10000")
    p.add_argument("--batch", type=int, default=256, help="as eval.batch_size (default 256)")
    p.add_argument("--cells", default=None, help="classes timed per image count (default: all)")
    p.add_argument("--memory-format", default="auto",
                   choices=["auto", "contiguous", "channels_last"],
                   help="auto: as efsnas scores (channels_last on CUDA and where the space says)")
    p.add_argument("--allocator", default="tuned", choices=["tuned", "system"],
                   help="tuned: glibc thresholds as efsnas sets them (efsnas.execution); "
                        "system: glibc's defaults")
    p.add_argument("--out", default="benchmarks/results/rank_all.json")
    a = p.parse_args()
    if a.allocator == "tuned":
        tune_cpu_allocator()
    dev = torch.device(a.device)
    space = create_space("nb201", C=16, N=5, input_size=32, num_classes=10)
    split = create_criterion("nonlinearity", groups="0,1/2/3", width_divisor=3).split(space)
    torch.manual_seed(0)
    nets = FewShotSupernets(split).to(dev)
    mode = {"auto": "auto", "contiguous": "off", "channels_last": "on"}[a.memory_format]
    cl = channels_last_for(mode, space, dev)
    if cl:
        nets.to(memory_format=torch.channels_last)
    cells = [c for c in space.enumerate()]
    classes = sorted({space.canonical(c) for c in cells if space.is_valid(c)})
    rows = []
    sizes = [int(v) for v in a.images.split(",")]
    limits = [int(v) for v in a.cells.split(",")] if a.cells else [None] * len(sizes)
    limits += [limits[-1]] * (len(sizes) - len(limits))
    for n, limit in zip(sizes, limits):
        x = torch.randn(n, 3, 32, 32, device=dev)
        y = torch.randint(0, 10, (n,), device=dev)
        batches = [(x[i:i + a.batch].contiguous(memory_format=torch.channels_last) if cl
                    else x[i:i + a.batch], y[i:i + a.batch]) for i in range(0, n, a.batch)]
        execution = Execution(dev, channels_last=cl, amp=dev.type == "cuda")  # bf16 on CUDA
        scorer = SubnetScorer(nets, batches, execution=execution)
        timed = classes[:limit] if limit else classes
        scorer.score(timed[:3])  # warm-up
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        scorer.score(timed[3:])
        if dev.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        per_class = dt / max(1, len(timed) - 3)
        # Every cell's score: the classes' scores shared with their members (dict look-ups).
        t1 = time.perf_counter()
        timed_set = set(timed)
        scorer.score([c for c in cells if space.is_valid(c) and space.canonical(c) in timed_set])
        share = time.perf_counter() - t1
        rows.append({"images": n, "device": a.device, "classes_timed": len(timed) - 3,
                     "seconds_per_class": per_class,
                     "seconds_all_cells": per_class * len(classes) + share,
                     "extrapolated": bool(limit), "images_per_s": n / per_class,
                     "channels_last": cl})
        r = rows[-1]
        print(f"{n:6d} images on {a.device}: {per_class * 1e3:.1f} ms per class, all 15,625 "
              f"cells in {r['seconds_all_cells']:.0f}s"
              f"{' (extrapolated)' if limit else ''}", flush=True)
    with open(a.out, "w") as f:
        json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(),
                   "classes": len(classes), "allocator": a.allocator, "rows": rows}, f,
                  indent=1)


if __name__ == "__main__":
    main()
