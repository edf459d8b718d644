"""Benchmark the supernet training step: images/s and peak memory.

Configurations (NAS-Bench-201 scale: N=5, 32x32 inputs, batch 64 and 128):
  oneshot   K=1, C=16, uniform sampler (SPOS)
  sbs       K=3, C=5,  one subnet per supernet per step (3 forward/backward, one optimizer step)
  balanced  K=3, C=5,  one subnet per step from a uniformly chosen supernet
  naive     K=1, C=16, a straightforward supernet kept here for reference: every edge computed
            (zeros for none, dead edges too), default memory format, PyTorch's own batch norm
            and pooling kernels, same sampled cells
  naive5    the same straightforward supernets at the narrow width: K=3, C=5, one subnet per
            step as `balanced` (the reference for the authors' NAS-Bench-201 step)
The other configurations run as `efsnas train` runs them: channels_last where the space says it
is faster (--memory-format auto; `contiguous` or `channels_last` force one), with the CPU fast
paths of efsnas.layers.
--width C scales every configuration (one-shot and reference at C, the K=3 supernets at C // 3).
Each configuration runs in a fresh subprocess so peak RSS (CPU) is its own; on CUDA the peak is
torch.cuda.max_memory_allocated. Writes JSON (default benchmarks/results/train_step.json).

    python benchmarks/train_step.py [--device cpu|cuda] [--steps 20] [--memory-format auto]
                                    [--width 16] [--profile DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time

import torch

from efsnas import create_criterion, create_space
from efsnas.execution import Execution, channels_last_for, tune_cpu_allocator
from efsnas.layers import AvgPool3x3, BatchNorm2d
from efsnas.sampling import create_sampler
from efsnas.spaces.nb201.cell import EDGES, OPS
from efsnas.spaces.nb201.network import NB201Supernet
from efsnas.supernets import FewShotSupernets
from efsnas.train.step import build_optimizer, train_step

MODES = {"auto": "auto", "contiguous": "off", "channels_last": "on"}  # --memory-format -> train.channels_last


class NaiveSupernet(NB201Supernet):
    """Reference: computes every edge of every cell, multiplying by zero for none."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # PyTorch's own layers instead of efsnas.layers' fast paths (same attributes, no state)
        for m in self.modules():
            if isinstance(m, BatchNorm2d):
                m.__class__ = torch.nn.BatchNorm2d
            elif isinstance(m, AvgPool3x3):
                m.__class__ = torch.nn.AvgPool2d

    def forward(self, x, subnet):
        body = self.body
        x = body.stem(x)
        for layer in body.layers:
            if hasattr(layer, "edges"):
                nodes = [x]
                for dst in (1, 2, 3):
                    acc = None
                    for e, (d, src) in enumerate(EDGES):
                        if d != dst:
                            continue
                        op = OPS[subnet[e]]
                        h = nodes[src] * 0.0 if op == "none" else layer.edges[str(e)][op](nodes[src])
                        acc = h if acc is None else acc + h
                    nodes.append(acc)
                x = nodes[3]
            else:
                x = layer(x)
        return body.classifier(body.lastact(x).mean((2, 3)))


def build(config: str, width: int):
    space = create_space("nb201", C=width, N=5, input_size=32, num_classes=10)
    if config in ("oneshot", "naive"):
        split = create_criterion("oneshot").split(space)
        sampler = "uniform"
    else:
        split = create_criterion("nonlinearity", groups="0,1/2/3", width_divisor=3).split(space)
        sampler = "balanced" if config == "naive5" else config
    # separate supernets: a step's cost is that of one narrow path per subnet in every structure
    nets = FewShotSupernets(split, structure="separate")
    if config.startswith("naive"):
        for k in range(len(nets)):
            nets.supernets[k] = NaiveSupernet(C=max(1, width // split.width_divisor), N=5,
                                              in_channels=3, num_classes=10)
    return space, nets, create_sampler(sampler, split, seed=0)


def measure(config: str, batch: int, device: str, steps: int, memory_format: str,
            profile_dir: str | None = None, width: int = 16, warmup: int = 3) -> dict:
    torch.manual_seed(0)
    dev = torch.device(device)
    space, nets, sampler = build(config, width)
    nets.to(dev)
    naive = config.startswith("naive")
    channels_last = not naive and channels_last_for(MODES[memory_format], space, dev)
    if channels_last:
        nets.to(memory_format=torch.channels_last)
    opt = build_optimizer(nets, lr=0.025, momentum=0.9, nesterov=True, weight_decay=5e-4,
                          wd_weights_only=False)
    x = torch.randn(batch, 3, 32, 32, device=dev)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device=dev)
    modules = [nets.supernet(k) for k in range(len(nets))]
    amp = Execution(dev, amp=not naive and dev.type == "cuda").autocast  # bf16 on CUDA

    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    for step in range(warmup):
        train_step(modules, sampler.draw(step), x, y, opt, grad_clip=5.0, autocast=amp)
    sync()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    forwards = 0
    for step in range(warmup, warmup + steps):
        draws = sampler.draw(step)
        forwards += len(draws)
        train_step(modules, draws, x, y, opt, grad_clip=5.0, autocast=amp)
    sync()
    dt = (time.perf_counter() - t0) / steps
    peak = (torch.cuda.max_memory_allocated() if dev.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    if profile_dir:  # where the time goes, per operator, over a few more steps
        from torch.profiler import ProfilerActivity, profile
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda"
                                               else [])
        with profile(activities=activities) as prof:
            for step in range(warmup + steps, warmup + steps + 3):
                train_step(modules, sampler.draw(step), x, y, opt, grad_clip=5.0, autocast=amp)
            sync()
        key = "self_cuda_time_total" if dev.type == "cuda" else "self_cpu_time_total"
        suffix = "" if width == 16 else f"-C{width}"
        with open(f"{profile_dir}/{config}-b{batch}-{device}{suffix}.txt", "w") as f:
            f.write(prof.key_averages().table(sort_by=key, row_limit=20, max_name_column_width=45))
    return {"config": config, "batch": batch, "device": device, "steps": steps, "width": width,
            "seconds_per_step": dt, "images_per_s": batch / dt,
            "subnet_forwards_per_step": forwards / steps, "peak_memory_mb": peak / 2**20,
            "channels_last": channels_last,
            "parameters": sum(p.numel() for p in nets.parameters())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batches", default="64,128")
    p.add_argument("--configs", default="oneshot,sbs,balanced,naive,naive5")
    p.add_argument("--width", type=int, default=16,
                   help="one-shot width C (the K=3 supernets get C // 3)")
    p.add_argument("--memory-format", default="auto",
                   choices=["auto", "contiguous", "channels_last"])
    p.add_argument("--allocator", default="tuned", choices=["tuned", "system"],
                   help="tuned: glibc thresholds as efsnas sets them (efsnas.execution); "
                        "system: glibc's defaults")
    p.add_argument("--out", default="benchmarks/results/train_step.json")
    p.add_argument("--profile", metavar="DIR",
                   help="also write a torch.profiler table per configuration into DIR")
    p.add_argument("--one", help=argparse.SUPPRESS)  # child process: config:batch
    a = p.parse_args()
    if a.one:
        if a.allocator == "tuned":
            tune_cpu_allocator()
        config, batch = a.one.split(":")
        print(json.dumps(measure(config, int(batch), a.device, a.steps, a.memory_format,
                                 a.profile, a.width)))
        return
    rows = []
    for batch in map(int, a.batches.split(",")):
        for config in a.configs.split(","):
            out = subprocess.run([sys.executable, __file__, "--one", f"{config}:{batch}",
                                  "--device", a.device, "--steps", str(a.steps),
                                  "--memory-format", a.memory_format, "--width", str(a.width),
                                  "--allocator", a.allocator]
                                 + (["--profile", a.profile] if a.profile else []),
                                 capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            r = rows[-1]
            print(f"{config:9s} batch {batch:4d}: {r['seconds_per_step'] * 1e3:8.1f} ms/step "
                  f"{r['images_per_s']:8.1f} img/s  peak {r['peak_memory_mb']:.0f} MB", flush=True)
    ratios = {}
    for batch in map(int, a.batches.split(",")):
        by = {r["config"]: r for r in rows if r["batch"] == batch}
        if "sbs" in by and "oneshot" in by:
            ratios[f"sbs_over_oneshot_b{batch}"] = (by["sbs"]["seconds_per_step"]
                                                    / by["oneshot"]["seconds_per_step"])
        if "naive" in by and "oneshot" in by:
            ratios[f"naive_over_oneshot_b{batch}"] = (by["naive"]["seconds_per_step"]
                                                      / by["oneshot"]["seconds_per_step"])
        if "naive5" in by and "balanced" in by:
            ratios[f"naive5_over_balanced_b{batch}"] = (by["naive5"]["seconds_per_step"]
                                                        / by["balanced"]["seconds_per_step"])
    result = {"torch": torch.__version__, "threads": torch.get_num_threads(),
              "allocator": a.allocator,
              "machine": platform.processor() or platform.machine(), "rows": rows,
              "ratios": ratios,
              "goals": {"sbs_over_oneshot": "<= 1.0", "naive_over_oneshot": ">= 3.0",
                        "naive5_over_balanced": ">= 3.0"}}
    with open(a.out, "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(ratios, indent=1))


if __name__ == "__main__":
    main()
