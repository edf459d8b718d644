"""Benchmark one supernet training step of each built-in space in both memory formats on CPU:
the evidence behind each space's `channels_last_on_cpu` (what `train.channels_last: auto`
follows). Same subnets, same batch, best of 3 rounds. Writes JSON (default
benchmarks/results/memory_format.json).

    python benchmarks/memory_format.py [--steps 8] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import random
import time

import torch
import torch.nn.functional as F

from efsnas import create_space

# (label, space name, space kwargs, width divisor, batch)
CASES = [
    ("nb201 C=16/3=5 N=5 32px", "nb201", dict(C=16, N=5, input_size=32), 3, 64),
    ("nb201 C=16 N=5 32px", "nb201", dict(C=16, N=5, input_size=32), 1, 64),
    ("mobilenet x0.25 32px", "mobilenet", dict(num_classes=10, input_size=32, width_mult=0.25),
     2, 32),
    ("mobilenet x1.0 64px", "mobilenet", dict(num_classes=10, input_size=64, width_mult=1.0),
     2, 32),
]


def step_time(space, width_divisor: int, batch: int, channels_last: bool, steps: int) -> float:
    torch.manual_seed(0)
    net = space.build_supernet(width_divisor=width_divisor)  # the space's own BN defaults
    x = torch.randn(batch, 3, space.input_size, space.input_size)
    y = torch.randint(0, 10, (batch,))
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    rng = random.Random(0)
    subnets = [space.sample(rng) for _ in range(steps)]

    def run() -> None:
        for s in subnets:
            net.zero_grad(set_to_none=True)
            F.cross_entropy(net(x, s), y).backward()

    run()  # warm-up
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        run()
        best = min(best, (time.perf_counter() - t0) / steps)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--out", default="benchmarks/results/memory_format.json")
    a = p.parse_args()
    rows = []
    for label, name, kwargs, g, batch in CASES:
        space = create_space(name, **kwargs)
        contiguous = step_time(space, g, batch, False, a.steps)
        channels_last = step_time(space, g, batch, True, a.steps)
        rows.append({"case": label, "batch": batch, "contiguous_ms": contiguous * 1e3,
                     "channels_last_ms": channels_last * 1e3,
                     "space_says_channels_last_on_cpu": space.channels_last_on_cpu})
        print(f"{label:28s} batch {batch:3d}: contiguous {contiguous * 1e3:6.1f} ms, "
              f"channels_last {channels_last * 1e3:6.1f} ms", flush=True)
    with open(a.out, "w") as f:
        json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(), "rows": rows},
                  f, indent=1)


if __name__ == "__main__":
    main()
