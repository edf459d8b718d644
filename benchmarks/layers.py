"""Benchmark efsnas.layers' CPU fast paths against PyTorch's own kernels.

For the tensors of a NAS-Bench-201 supernet at batch 64 (stage widths C, 2C, 4C at 32, 16 and 8
pixels), times forward + backward of batch norm without affine parameters or running statistics
and of 3x3 average pooling, in both memory formats, best of 5 rounds. Writes JSON (default
benchmarks/results/layers.json).

    python benchmarks/layers.py [--widths 5,16] [--reps 20] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from efsnas.layers import AvgPool3x3, BatchNorm2d


def _time(fn, reps: int, rounds: int = 5) -> float:
    """Seconds per call: the best of `rounds` rounds of `reps` calls (as timeit advises: the
    other rounds measure what else the machine was doing)."""
    for _ in range(3):
        fn()
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        best = min(best, (time.perf_counter() - t0) / reps)
    return best


def _forward_backward(layer, x, grad):
    def run():
        x.grad = None
        layer(x).backward(grad)
    return run


def measure(c: int, hw: int, batch: int, reps: int) -> dict:
    x = torch.randn(batch, c, hw, hw)
    grad = torch.randn_like(x)
    ours_bn = BatchNorm2d(c, affine=False, track_running_stats=False)
    ours_pool = AvgPool3x3()
    row = {"channels": c, "pixels": hw, "batch": batch}
    for fmt in ("contiguous", "channels_last"):
        mf = torch.contiguous_format if fmt == "contiguous" else torch.channels_last
        xf = x.clone(memory_format=mf).requires_grad_()
        gf = grad.clone(memory_format=mf)
        cases = {
            "batch_norm_pytorch": lambda t: F.batch_norm(t, None, None, training=True),
            "batch_norm_efsnas": ours_bn,
            "avg_pool_pytorch": lambda t: F.avg_pool2d(t, 3, 1, 1, count_include_pad=False),
            "avg_pool_efsnas": ours_pool,
        }
        for name, layer in cases.items():
            row[f"{name}_{fmt}_ms"] = _time(_forward_backward(layer, xf, gf), reps) * 1e3
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--widths", default="5,16", help="base widths C; stages use C, 2C, 4C")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--out", default="benchmarks/results/layers.json")
    a = p.parse_args()
    rows = []
    for base in map(int, a.widths.split(",")):
        for c, hw in ((base, 32), (2 * base, 16), (4 * base, 8)):
            r = measure(c, hw, a.batch, a.reps)
            rows.append(r)
            print(f"C={c:3d} {hw:2d}px  batch norm (ms, fwd+bwd) "
                  f"pytorch {r['batch_norm_pytorch_contiguous_ms']:.2f} / "
                  f"{r['batch_norm_pytorch_channels_last_ms']:.2f} CL, "
                  f"efsnas CL {r['batch_norm_efsnas_channels_last_ms']:.2f}   avg pool "
                  f"pytorch {r['avg_pool_pytorch_contiguous_ms']:.2f} / "
                  f"{r['avg_pool_pytorch_channels_last_ms']:.2f} CL, "
                  f"efsnas CL {r['avg_pool_efsnas_channels_last_ms']:.2f}", flush=True)
    with open(a.out, "w") as f:
        json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(), "rows": rows},
                  f, indent=1)


if __name__ == "__main__":
    main()
