"""ImageFolder trees (`root/<class>/<image files>`): scanning, PIL reading, in-memory loading.

Classes are the sub-folder names sorted alphabetically (label i = i-th name) and files are
sorted by path, so every machine builds the same (path, label) list. Small trees are decoded
once into an ImageSet; large ones (ImageNet) are streamed by `stream.ImageFolderStream`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from efsnas.data.images import ImageSet
from efsnas.errors import DataError

__all__ = ["IMAGE_EXTENSIONS", "IMAGENET_STATS", "scan_image_folder", "read_image",
           "resize_center_crop", "load_image_folder", "to_chw_uint8", "pixel_stats"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".bmp", ".gif", ".tif", ".tiff",
                    ".webp")
IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))

Samples = list[tuple[str, int]]


def scan_image_folder(root: str | Path, *, classes: Sequence[str] | None = None
                      ) -> tuple[list[str], Samples]:
    """The class names and the sorted (path, label) list of an ImageFolder tree.

    Pass `classes` (a training tree's) to label a validation tree the same way; it must then
    hold only those classes."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist (or is not a folder)")
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not found:
        loose = [p for p in root.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS]
        hint = (f"; it holds {len(loose)} images directly: put each class in its own folder"
                if loose else "")
        raise DataError(f"image folder {root} must hold one sub-folder per class "
                        f"(root/<class>/<image files>){hint}")
    if classes is None:
        classes = found
    else:
        extra = sorted(set(found) - set(classes))
        if extra:
            raise DataError(f"{root} holds classes the training set lacks: "
                            f"{', '.join(extra[:5])}{' ...' if len(extra) > 5 else ''}")
    index = {c: i for i, c in enumerate(classes)}
    samples: Samples = []
    empty = []
    for c in found:
        files = sorted(str(p) for p in (root / c).rglob("*")
                       if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        if not files:
            empty.append(c)
        samples.extend((f, index[c]) for f in files)
    if empty:
        raise DataError(f"class folders with no images ({', '.join(IMAGE_EXTENSIONS)}) in "
                        f"{root}: {', '.join(empty[:5])}{' ...' if len(empty) > 5 else ''}")
    return list(classes), samples


def read_image(path: str, *, mode: str = "RGB"):
    """Decode one image file into a PIL image of `mode` ("RGB" or "L")."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return img.convert(mode)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"cannot read image {path}: {e}") from None


def resize_center_crop(img, *, size: int, resize: int | None = None):
    """Scale the shorter side to `resize` (default `size`), then cut the central size x size."""
    from PIL import Image

    resize = resize or size
    w, h = img.size
    scale = resize / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), Image.BILINEAR)  # PIL antialiases when shrinking
    left, top = (nw - size) // 2, (nh - size) // 2
    return img.crop((left, top, left + size, top + size))


def to_chw_uint8(img) -> torch.Tensor:
    """PIL image -> uint8 tensor [C, H, W]."""
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def load_image_folder(root: str | Path, *, image_size: int, classes: Sequence[str] | None = None,
                      channels: int = 3, stats: tuple | None = None, name: str = ""
                      ) -> ImageSet:
    """Decode a (small) ImageFolder tree into memory at image_size x image_size.

    Each image is scaled so its shorter side is image_size and centre-cropped. `stats` =
    (mean, std) defaults to the tree's own per-channel statistics."""
    classes, samples = scan_image_folder(root, classes=classes)
    mode = "RGB" if channels == 3 else "L"
    images = torch.empty((len(samples), channels, image_size, image_size), dtype=torch.uint8)
    for i, (path, _) in enumerate(samples):
        images[i] = to_chw_uint8(resize_center_crop(read_image(path, mode=mode), size=image_size))
    labels = torch.tensor([lab for _, lab in samples], dtype=torch.int64)
    if stats is None:
        stats = pixel_stats(images)
    return ImageSet(images, labels, mean=stats[0], std=stats[1], name=name or Path(root).name,
                    num_classes=len(classes))


def pixel_stats(images: torch.Tensor, *, chunk: int = 4096) -> tuple[tuple, tuple]:
    """Per-channel mean and std of uint8 images [N, C, H, W], in [0, 1] units."""
    c = images.shape[1]
    total = torch.zeros(c, dtype=torch.float64)
    sq = torch.zeros(c, dtype=torch.float64)
    for i in range(0, len(images), chunk):
        part = images[i:i + chunk].double() / 255
        total += part.sum(dim=(0, 2, 3))
        sq += (part * part).sum(dim=(0, 2, 3))
    n = max(1, images.shape[0] * images.shape[2] * images.shape[3])
    mean = total / n
    std = (sq / n - mean * mean).clamp_min(1e-12).sqrt()
    return tuple(mean.tolist()), tuple(max(s, 1e-3) for s in std.tolist())
