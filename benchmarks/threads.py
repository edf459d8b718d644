"""Threads or processes: 1 process x 2 threads against 2 processes x 1 thread, per stage of the
main job, on this machine (CPU).

Two stages, each at the main job's scale (the `default` preset):
  train_step     a supernet training step: the preset's K=3 NAS-Bench-201 supernets (C=8, N=1,
                 width divisor 2), one SBS draw per step (a subnet of every supernet), batch 64,
                 16x16 one-channel inputs
  retrain_epoch  one stand-alone retraining epoch (`retrain_subnet`, the preset's recipe) of the
                 space's reference cell on the preset's training images
Each measurement runs in fresh processes (`--one`), which warm up, wait for each other at a
barrier (a folder of ready files), then measure; images/s is summed over the processes. The
ratio `processes_over_threads` > 1 says independent single-thread workers (efsnas.parallel's
`--workers`) do more work per second than one process with every thread.

    python benchmarks/threads.py [--steps 200] [--repeats 3] [--out benchmarks/results/threads.json]
    python benchmarks/threads.py --quick --out /tmp/threads.json     # seconds: a smoke check
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STAGES = ("train_step", "retrain_epoch")
LAYOUTS = {"1x2": (1, 2), "2x1": (2, 1)}  # processes x threads


def _config(quick: bool):
    from efsnas.app.config import load_config

    sets = ["train.tensorboard=false", "train.progress=false"]
    if quick:
        sets += ["data.max_train=512", "data.max_heldout=128", "retrain.max_train=256"]
    return load_config(preset="default", overrides=sets)


def _barrier(folder: str, parties: int, me: int, timeout: float = 600.0) -> None:
    Path(folder, f"ready{me}").touch()
    t0 = time.time()
    while len(list(Path(folder).glob("ready*"))) < parties:
        if time.time() - t0 > timeout:
            raise TimeoutError("the other benchmark process never got ready")
        time.sleep(0.01)


def measure_train_step(steps: int, barrier) -> dict:
    import torch

    from efsnas.app.files import RunFiles
    from efsnas.app.run import build_criterion, build_space, initial_supernets
    from efsnas.execution import resolve_execution
    from efsnas.sampling import create_sampler
    from efsnas.train.step import build_optimizer, train_step

    cfg = _config(quick=False)

    class _Data:  # the shapes the preset's data gives the space (Fashion-MNIST at 16x16)
        in_channels, num_classes, image_size = 1, 10, cfg.data.image_size

    space = build_space(cfg, _Data)
    criterion = build_criterion(cfg)
    with tempfile.TemporaryDirectory() as empty:
        nets = initial_supernets(cfg, criterion, space, RunFiles(empty))
    t = cfg.train
    execution = resolve_execution("cpu", space, amp=t.amp, channels_last=t.channels_last,
                                  cpu_allocator=t.cpu_allocator)
    nets = execution.module(nets)
    sampler = create_sampler(t.sampler, nets.split, seed=0)
    opt = build_optimizer(nets, lr=t.lr, momentum=t.momentum, nesterov=t.nesterov,
                          weight_decay=t.weight_decay, wd_weights_only=t.wd_weights_only)
    size = cfg.data.image_size
    x = torch.randn(t.batch_size, 1, size, size)
    if execution.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (t.batch_size,))
    modules = [nets.supernet(k) for k in range(len(nets))]
    for step in range(5):  # warm-up
        train_step(modules, sampler.draw(step), x, y, opt, grad_clip=t.grad_clip,
                   autocast=execution.autocast)
    barrier()
    t0 = time.perf_counter()
    for step in range(5, 5 + steps):
        train_step(modules, sampler.draw(step), x, y, opt, grad_clip=t.grad_clip,
                   autocast=execution.autocast)
    seconds = time.perf_counter() - t0
    return {"images": steps * t.batch_size, "seconds": seconds}


def measure_retrain_epoch(quick: bool, barrier) -> dict:
    from efsnas.app.run import build_space, execution_for, load_data, retrain_subnet

    cfg = _config(quick)
    data = load_data(cfg)
    space = build_space(cfg, data)
    subnet = space.reference_subnet()
    execution = execution_for(cfg, space, __import__("torch").device("cpu"))
    one = cfg.model_copy(update={"retrain": cfg.retrain.model_copy(update={"epochs": 1})})
    warm = one.model_copy(update={"retrain": one.retrain.model_copy(update={"max_train": 256})})
    retrain_subnet(warm, space, data, subnet, seed=0, execution=execution)  # warm-up
    barrier()
    n = min(len(data.train), one.retrain.max_train or len(data.train))
    rec = retrain_subnet(one, space, data, subnet, seed=0, execution=execution)
    return {"images": n, "seconds": rec["seconds"], "data": data.description}


def child(stage: str, threads: int, steps: int, quick: bool, folder: str, parties: int,
          me: int) -> dict:
    import torch

    torch.set_num_threads(threads)

    def barrier():
        _barrier(folder, parties, me)

    if stage == "train_step":
        out = measure_train_step(steps, barrier)
    else:
        out = measure_retrain_epoch(quick, barrier)
    return {**out, "threads": torch.get_num_threads()}


def run_layout(stage: str, layout: str, steps: int, quick: bool) -> dict:
    procs, threads = LAYOUTS[layout]
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        children = [subprocess.Popen(
            [sys.executable, __file__, "--one", stage, "--threads", str(threads),
             "--steps", str(steps), "--barrier", folder, "--parties", str(procs),
             "--me", str(i)] + (["--quick"] if quick else []),
            stdout=subprocess.PIPE, text=True, env=env) for i in range(procs)]
        outs = []
        for c in children:
            stdout, _ = c.communicate()
            if c.returncode:
                raise SystemExit(f"{stage} {layout}: a benchmark process failed")
            outs.append(json.loads(stdout.strip().splitlines()[-1]))
    rate = sum(o["images"] / o["seconds"] for o in outs)
    return {"stage": stage, "layout": layout, "processes": procs, "threads": threads,
            "images_per_s": rate, "per_process": outs}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--steps", type=int, default=200, help="training steps measured (train_step)")
    p.add_argument("--repeats", type=int, default=3, help="measurements per stage and layout, "
                   "interleaved; the median is reported")
    p.add_argument("--stages", default=",".join(STAGES))
    p.add_argument("--quick", action="store_true",
                   help="a few steps on a few hundred images: checks the script, measures nothing")
    p.add_argument("--out", default="benchmarks/results/threads.json")
    p.add_argument("--one", choices=STAGES, help=argparse.SUPPRESS)  # a child process
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--barrier", help=argparse.SUPPRESS)
    p.add_argument("--parties", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--me", type=int, default=0, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one:
        print(json.dumps(child(a.one, a.threads, a.steps, a.quick, a.barrier, a.parties, a.me)))
        return
    steps, repeats = (5, 1) if a.quick else (a.steps, a.repeats)
    stages = [s.strip() for s in a.stages.split(",") if s.strip()]
    rows, summary = [], {}
    for stage in stages:
        rates: dict[str, list[float]] = {k: [] for k in LAYOUTS}
        for r in range(repeats):
            for layout in LAYOUTS if r % 2 == 0 else reversed(LAYOUTS):  # interleaved
                row = run_layout(stage, layout, steps, a.quick)
                rows.append(row)
                rates[layout].append(row["images_per_s"])
                print(f"{stage:13s} {layout}: {row['images_per_s']:8.0f} img/s", flush=True)
        med = {k: statistics.median(v) for k, v in rates.items()}
        summary[stage] = {"1x2_images_per_s": med["1x2"], "2x1_images_per_s": med["2x1"],
                          "processes_over_threads": med["2x1"] / med["1x2"]}
        print(f"{stage}: 2 processes x 1 thread / 1 process x 2 threads = "
              f"{summary[stage]['processes_over_threads']:.2f}", flush=True)
    import torch

    out = {"machine": {"platform": platform.platform(), "python": platform.python_version(),
                       "torch": torch.__version__, "cpus": os.cpu_count(),
                       "affinity": len(os.sched_getaffinity(0))
                       if hasattr(os, "sched_getaffinity") else None},
           "quick": a.quick, "steps": steps, "repeats": repeats, "summary": summary,
           "rows": rows, "command": " ".join(["python", "benchmarks/threads.py", *sys.argv[1:]])}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"written: {a.out}")


if __name__ == "__main__":
    main()
