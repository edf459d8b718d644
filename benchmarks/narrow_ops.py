"""Micro-benchmarks behind the narrow-step design (README, Benchmarks): forward + backward at
batch 64, channels_last, NAS-Bench-201 stage 1 at C=5 (32x32), best of 5 repeats of 30 calls.

  conv_separate_x3   three ReLU-free 3x3 convolutions 5 -> 5 on one input (edge by edge)
  conv_stacked       one 3x3 convolution 5 -> 15 (the three edges' weights stacked)
  bn_fast            efsnas.layers batch norm (wide-row fast path)
  bn_pytorch         PyTorch's own channels_last batch norm kernel
  bn_compiled        torch.compile of a batch-statistics norm (inductor, CPU)
  edge_eager         ReLU -> 3x3 conv -> batch norm, as the supernet runs it
  edge_compiled      the same function under torch.compile (the convolution stays oneDNN's)

    python benchmarks/narrow_ops.py [--out benchmarks/results/narrow_ops.json] [--no-compile]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from efsnas.execution import tune_cpu_allocator
from efsnas.layers import BatchNorm2d


def best_ms(fn, calls: int = 30, repeats: int = 5) -> float:
    for _ in range(5):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        out.append((time.perf_counter() - t0) / calls * 1e3)
    return min(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", default="benchmarks/results/narrow_ops.json")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    a = p.parse_args()
    tune_cpu_allocator()
    torch.manual_seed(0)
    cl = torch.channels_last
    x = torch.randn(64, 5, 32, 32).contiguous(memory_format=cl).requires_grad_()
    ws = [torch.randn(5, 5, 3, 3).contiguous(memory_format=cl).requires_grad_() for _ in range(3)]
    g5 = torch.randn(64, 5, 32, 32).contiguous(memory_format=cl)
    g15 = torch.randn(64, 15, 32, 32).contiguous(memory_format=cl)

    def conv_separate():
        for w in ws:
            F.conv2d(x, w, padding=1).backward(g5)

    def conv_stacked():
        F.conv2d(x, torch.cat(ws), padding=1).backward(g15)

    fast = BatchNorm2d(5, affine=False, track_running_stats=False)

    def norm(t):
        var, mean = torch.var_mean(t, dim=(0, 2, 3), keepdim=True, correction=0)
        return (t - mean) * torch.rsqrt(var + 1e-5)

    def edge(t, w):
        return fast(F.conv2d(torch.relu(t), w, padding=1))

    rows = {
        "conv_separate_x3": best_ms(conv_separate),
        "conv_stacked": best_ms(conv_stacked),
        "bn_fast": best_ms(lambda: fast(x).backward(g5)),
        "bn_pytorch": best_ms(lambda: F.batch_norm(x, None, None, training=True).backward(g5)),
        "edge_eager": best_ms(lambda: edge(x, ws[0]).backward(g5)),
    }
    if not a.no_compile:
        t0 = time.perf_counter()
        cnorm = torch.compile(norm, dynamic=False)
        cedge = torch.compile(lambda t, w: norm(F.conv2d(torch.relu(t), w, padding=1)),
                              dynamic=False)
        cnorm(x).backward(g5)
        cedge(x, ws[0]).backward(g5)
        rows["compile_seconds"] = time.perf_counter() - t0
        rows["bn_compiled"] = best_ms(lambda: cnorm(x).backward(g5))
        rows["edge_compiled"] = best_ms(lambda: cedge(x, ws[0]).backward(g5))
    for k, v in rows.items():
        print(f"{k:18s} {v:8.3f} {'s' if k == 'compile_seconds' else 'ms'}")
    with open(a.out, "w") as f:
        json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(), "ms": rows},
                  f, indent=1)


if __name__ == "__main__":
    main()
