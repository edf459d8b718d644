"""How a run executes: device, mixed precision with its gradient scaler, memory format, and the
CPU allocator, resolved once (`resolve_execution`).

The trainer, stand-alone training, the scorer and the data batches take the resulting
`Execution` instead of deciding again, so a setting cannot differ between them.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import sys
from dataclasses import dataclass

import torch
from torch import nn

from efsnas.api.search_space import SearchSpace


@dataclass(frozen=True)
class Execution:
    """Where and how tensors run. `amp` is the effective setting: autocast on CUDA only, since
    CPU autocast is slower for these small convolutions."""

    device: torch.device = torch.device("cpu")
    channels_last: bool = False
    amp: bool = False
    amp_dtype: str = "bfloat16"

    def autocast(self):
        """A fresh autocast context for one forward pass (a no-op when amp is off)."""
        if self.amp:
            return torch.autocast(self.device.type, dtype=getattr(torch, self.amp_dtype))
        return contextlib.nullcontext()

    def grad_scaler(self) -> torch.amp.GradScaler | None:
        """float16 needs loss scaling; bfloat16 and float32 do not."""
        if self.amp and self.amp_dtype == "float16":
            return torch.amp.GradScaler(self.device.type)
        return None

    def module(self, module: nn.Module) -> nn.Module:
        """`module` moved to the device, in the memory format (in place, returned)."""
        module.to(self.device)
        if self.channels_last:
            module.to(memory_format=torch.channels_last)
        return module


CPU = Execution()


def channels_last_for(mode: str, space: SearchSpace, device: torch.device) -> bool:
    """Memory format from `train.channels_last`: "on", "off", or "auto" (on CUDA; on CPU when
    the space is measured faster that way, `SearchSpace.channels_last_on_cpu`)."""
    if mode not in ("auto", "on", "off"):
        raise ValueError(f"channels_last must be auto, on or off, got {mode!r}")
    return mode == "on" or (mode == "auto" and (device.type == "cuda"
                                                or space.channels_last_on_cpu))


def resolve_execution(device: torch.device | str, space: SearchSpace, *, amp: bool = True,
                      amp_dtype: str = "bfloat16", channels_last: str = "auto",
                      cpu_allocator: str = "tuned") -> Execution:
    """The one place that turns the configuration (`train.amp`, `train.amp_dtype`,
    `train.channels_last`, `train.cpu_allocator`) into how tensors run on `device`."""
    device = torch.device(device)
    if cpu_allocator not in ("tuned", "system"):
        raise ValueError(f"cpu_allocator must be tuned or system, got {cpu_allocator!r}")
    if device.type == "cpu" and cpu_allocator == "tuned":
        tune_cpu_allocator()
    return Execution(device=device, channels_last=channels_last_for(channels_last, space, device),
                     amp=bool(amp) and device.type == "cuda", amp_dtype=amp_dtype)


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_TUNED: bool | None = None


def tune_cpu_allocator() -> bool:
    """Keep freed activation memory in the process instead of returning it to the OS.

    glibc serves blocks above its mmap threshold (128 KiB to 32 MiB, adapting) with fresh
    pages and trims the heap top eagerly, so a CPU step that frees and reallocates the same
    multi-MB activations page-faults on every one of them: scoring a narrow supernet on 256
    images spent over half its time that way (benchmarks/rank_all.py --allocator system). The
    fixed thresholds below make those blocks reuse heap memory, as jemalloc or tcmalloc would;
    the process keeps its peak heap. Process-wide, Linux with glibc only; returns whether it
    applied.
    """
    global _TUNED
    if _TUNED is not None:
        return _TUNED
    _TUNED = False
    if sys.platform.startswith("linux"):
        name = ctypes.util.find_library("c")
        try:
            mallopt = getattr(ctypes.CDLL(name), "mallopt", None) if name else None
        except OSError:
            mallopt = None
        if mallopt is not None:
            # 32 MiB is the largest threshold glibc accepts on 64-bit; larger blocks stay mmapped
            _TUNED = bool(mallopt(_M_MMAP_THRESHOLD, 32 << 20)
                          and mallopt(_M_TRIM_THRESHOLD, 1 << 30)
                          and mallopt(_M_TOP_PAD, 64 << 20))
    return _TUNED
