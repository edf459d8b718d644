"""Whole-batch augmentation and resizing with tensor ops (no per-image Python loop).

Augmentation runs on the uint8 batch already on the training device; its random numbers come
from a CPU generator so a batch is augmented identically on CPU and CUDA.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["AUGMENTATIONS", "augment_batch", "crop_flip", "resize_images"]

AUGMENTATIONS = ("crop_flip", "crop", "flip")


def crop_flip(x: torch.Tensor, *, pad: int, flip: bool, gen: torch.Generator) -> torch.Tensor:
    """Random crop after zero padding by `pad` pixels, then a horizontal flip with p = 0.5.

    The padding is pixel value 0 (black), as in the standard CIFAR recipe (pad the image, then
    normalise), so after normalisation it is -mean/std, not 0."""
    b, c, h, w = x.shape
    if b == 0 or (pad == 0 and not flip):
        return x
    dev = x.device
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=gen).to(dev, non_blocking=True)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=gen).to(dev, non_blocking=True)
    flipped = torch.rand(b, generator=gen).to(dev, non_blocking=True) < 0.5
    if not flip:
        flipped = torch.zeros_like(flipped)
    xp = F.pad(x, (pad, pad, pad, pad)) if pad else x
    ar_h = torch.arange(h, device=dev)
    ar_w = torch.arange(w, device=dev)
    rows = oy[:, None] + ar_h  # [B, H]
    # a flip is folded into the column index: read the crop's columns right to left
    cols = ox[:, None] + torch.where(flipped[:, None], w - 1 - ar_w, ar_w)  # [B, W]
    bi = torch.arange(b, device=dev)[:, None, None, None]
    ci = torch.arange(c, device=dev)[None, :, None, None]
    return xp[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]


def augment_batch(x: torch.Tensor, name: str | None, *, gen: torch.Generator) -> torch.Tensor:
    """Apply augmentation `name` to a uint8 batch [B, C, H, W]: None, "flip", "crop_flip", or
    "crop" (no flip: for digits, where a mirror image is another symbol).

    The crops pad by image_size // 8: 4 pixels for 32x32, 3 for 28x28, 2 for 16x16."""
    if name is None:
        return x
    if name in ("crop_flip", "crop"):
        return crop_flip(x, pad=max(1, x.shape[-1] // 8), flip=name == "crop_flip", gen=gen)
    if name == "flip":
        return crop_flip(x, pad=0, flip=True, gen=gen)
    raise ValueError(f"unknown augmentation {name!r} for in-memory images; choose one of: "
                     f"None, {', '.join(AUGMENTATIONS)}")


def resize_images(images: torch.Tensor, size: int, *, chunk: int = 2048) -> torch.Tensor:
    """Resize uint8 images [N, C, H, W] to [N, C, size, size] (bilinear with antialiasing)."""
    if images.shape[-2:] == (size, size):
        return images
    out = torch.empty((images.shape[0], images.shape[1], size, size), dtype=torch.uint8)
    for i in range(0, images.shape[0], chunk):  # chunks bound the float32 copy's memory
        part = images[i:i + chunk].float()
        part = F.interpolate(part, size=(size, size), mode="bilinear", antialias=True,
                             align_corners=False)
        out[i:i + chunk] = part.round_().clamp_(0, 255).to(torch.uint8)
    return out
