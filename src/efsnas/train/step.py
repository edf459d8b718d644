"""One training step of few-shot supernets: the hot path, kept free of bookkeeping."""

from __future__ import annotations

import contextlib
import math
import weakref
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from efsnas.api.search_space import Subnet


def cosine_lr(epoch: int, epochs: int, lr: float, lr_min: float) -> float:
    """The learning rate of `epoch` (0-based): cosine from lr to lr_min over `epochs`, set once
    per epoch (supernets and stand-alone networks alike)."""
    return lr_min + (lr - lr_min) * (1 + math.cos(math.pi * epoch / epochs)) / 2


def train_step(
    modules: Sequence[nn.Module],
    draws: Sequence[tuple[int, Subnet | None]],
    x: torch.Tensor,
    y: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    *,
    label_smoothing: float = 0.0,
    grad_clip: float | None = None,
    autocast=contextlib.nullcontext,
    scaler: torch.amp.GradScaler | None = None,
    set_to_none: bool = True,
) -> tuple[list[float], list[int]]:
    """Run every drawn subnet through its supernet on the same batch, accumulate the gradients,
    then take one optimizer step (SBS when `draws` holds one subnet per supernet). A draw
    `(k, None)` runs `modules[k]` as a plain network, `modules[k](x)` (stand-alone training).

    `set_to_none=True`: weights no subnet of the step touched keep grad None, so SGD applies
    neither weight decay nor momentum to them. False zeroes the gradients instead (PyTorch's
    behaviour before 2.0, under which the authors trained): decay and momentum then act on
    every weight that ever had a gradient, at every step.

    Returns each draw's loss and number of correct predictions (as Python numbers, one sync).
    """
    optimizer.zero_grad(set_to_none=set_to_none)
    losses, corrects = [], []
    # A module that runs several draws (shared structures) accumulates their gradients locally
    # and synchronises once, on its last backward: the same average as all-reducing after every
    # draw, with 1/K of the traffic.
    last_use = {id(modules[k]): i for i, (k, _) in enumerate(draws)}
    for i, (k, subnet) in enumerate(draws):
        m = modules[k]
        sync = (m.no_sync() if hasattr(m, "no_sync") and last_use[id(m)] != i
                else contextlib.nullcontext())
        with sync:
            with autocast():
                logits = m(x) if subnet is None else m(x, subnet)
                loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
            (scaler.scale(loss) if scaler is not None else loss).backward()
        losses.append(loss.detach())
        corrects.append((logits.detach().argmax(1) == y).sum())
    if scaler is not None:
        scaler.unscale_(optimizer)
    if grad_clip:
        # Clip each supernet module on its own, so one supernet's gradient never shrinks
        # another's; a shared structure is one module, clipped once.
        for m in {id(modules[k]): modules[k] for k, _ in draws}.values():
            params = [p for p in _parameters(m) if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    stats = torch.stack([torch.stack(losses).float(), torch.stack(corrects).float()]).cpu()
    return stats[0].tolist(), [int(c) for c in stats[1].tolist()]


_PARAMETERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _parameters(module: nn.Module) -> list[nn.Parameter]:
    """`module.parameters()`, listed once per module: the walk over a supernet's ~1,000
    submodules costs ~0.7 ms, every step (NAS-Bench-201 at C=5). Supernets keep their
    parameters once built (loading a state dict or `.to()` keeps the Parameter objects)."""
    params = _PARAMETERS.get(module)
    if params is None:
        params = _PARAMETERS[module] = list(module.parameters())
    return params


def build_optimizer(module: nn.Module, *, lr: float, momentum: float, nesterov: bool,
                    weight_decay: float, wd_weights_only: bool) -> torch.optim.SGD:
    """SGD; with wd_weights_only, biases and normalisation parameters get no weight decay."""
    if wd_weights_only:
        decay = [p for p in module.parameters() if p.ndim > 1]
        no_decay = [p for p in module.parameters() if p.ndim <= 1]
        groups = [{"params": decay, "weight_decay": weight_decay},
                  {"params": no_decay, "weight_decay": 0.0}]
    else:
        groups = [{"params": list(module.parameters()), "weight_decay": weight_decay}]
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0)
