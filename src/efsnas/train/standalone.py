"""Training one subnet as a stand-alone network (retraining, building ground truth)."""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from efsnas.execution import CPU, Execution
from efsnas.progress import Progress
from efsnas.train.step import build_optimizer, cosine_lr, train_step


@torch.inference_mode()
def accuracy(net: nn.Module, batches, *, execution: Execution = CPU) -> tuple[float, float]:
    """Top-1 (%) and mean loss of a network in eval mode over fixed batches."""
    net.eval()
    correct, loss, n = 0, 0.0, 0
    for x, y in batches:
        with execution.autocast():
            logits = net(x)
        correct += int((logits.argmax(1) == y).sum())
        loss += float(F.cross_entropy(logits.float(), y, reduction="sum"))
        n += len(y)
    return 100.0 * correct / max(n, 1), loss / max(n, 1)


@torch.inference_mode()
def precise_bn(net: nn.Module, batches, *, execution: Execution = CPU) -> None:
    """Re-estimate the BatchNorm running statistics as a plain average over `batches` (the
    weights unchanged). A network's running statistics are a moving average taken while its
    weights still changed; with narrow layers they can be far off at the end (one MobileNet
    ground-truth training tested at 60.6% as trained and 81.2% after this:
    benchmarks/results/standalone_bn.json)."""
    bns = [m for m in net.modules()
           if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    net.train()
    for x, _ in batches:
        with execution.autocast():
            net(x)
    net.eval()


def train_network(net: nn.Module, train_set, *, epochs: int, batch_size: int, lr: float,
                  lr_min: float = 0.0, momentum: float = 0.9, nesterov: bool = True,
                  weight_decay: float = 5e-4, wd_weights_only: bool = False,
                  label_smoothing: float = 0.0, grad_clip: float | None = 5.0,
                  augment: str | None = None, seed: int = 0, execution: Execution = CPU,
                  progress: bool = False, dist=None) -> dict:
    """Plain supervised training with SGD and the per-epoch cosine schedule; returns a summary.

    Each step is the supernets' `train_step` with one draw, the network itself (so mixed
    precision, its gradient scaler and clipping behave as in supernet training).
    Under torchrun (`dist` enabled) the network is wrapped in DistributedDataParallel and each
    rank reads its own share of every epoch: `batch_size` is per process, as in the recipes.
    """
    torch.manual_seed(seed)
    device = execution.device
    execution.module(net)
    opt = build_optimizer(net, lr=lr, momentum=momentum, nesterov=nesterov,
                          weight_decay=weight_decay, wd_weights_only=wd_weights_only)
    scaler = execution.grad_scaler()
    rank, world = (dist.rank, dist.world_size) if dist is not None else (0, 1)
    model = net
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        model = DDP(net, device_ids=[device.index] if device.type == "cuda" else None)
    t0, last_loss = time.time(), float("nan")
    bar = Progress(epochs, desc="retrain epochs", enabled=progress and rank == 0, every_steps=1)
    for epoch in range(epochs):
        for g in opt.param_groups:
            g["lr"] = cosine_lr(epoch, epochs, lr, lr_min)
        net.train()
        total, n = 0.0, 0
        for x, y in train_set.batches(batch_size, shuffle=True, seed=seed, epoch=epoch,
                                      augment=augment, device=device, drop_last=True,
                                      rank=rank, world_size=world,
                                      channels_last=execution.channels_last):
            (loss,), _ = train_step([model], [(0, None)], x, y, opt,
                                    label_smoothing=label_smoothing, grad_clip=grad_clip,
                                    autocast=execution.autocast, scaler=scaler)
            total += loss * len(y)
            n += len(y)
        last_loss = total / max(n, 1)
        bar.update(1, loss=f"{last_loss:.3f}")
    bar.close()
    return {"epochs": epochs, "train_loss": last_loss, "seconds": time.time() - t0}
