"""Streaming batches from a large ImageFolder tree (ImageNet) through a DataLoader.

Workers decode and crop with PIL and hand over uint8 batches; the main process copies them to
the device (4x less than float32) and normalises there. Each image's random crop is seeded
from (seed, epoch, index), so the batches do not depend on the number of workers, and the
visiting order comes from `order.epoch_order` like the in-memory sets'.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from efsnas.data.folder import (
    IMAGENET_STATS,
    read_image,
    resize_center_crop,
    scan_image_folder,
    to_chw_uint8,
)
from efsnas.data.images import Batch, NormalisedBatches, Normaliser, as_index
from efsnas.data.order import batch_slices, derive_seed, epoch_order
from efsnas.data.splits import per_class_split

__all__ = ["ImageFolderStream", "STREAM_AUGMENTATIONS", "random_resized_crop"]

STREAM_AUGMENTATIONS = ("imagenet", "flip")


def random_resized_crop(img, *, size: int, rng: random.Random, scale=(0.08, 1.0),
                        ratio=(3 / 4, 4 / 3)):
    """The Inception crop: a random area fraction and aspect ratio, resized to size x size."""
    from PIL import Image

    w, h = img.size
    area = w * h
    log_r = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):  # bounded retries, then the central crop below
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_r))
        cw, ch = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            left, top = rng.randint(0, w - cw), rng.randint(0, h - ch)
            break
    else:
        if w / h < ratio[0]:
            cw, ch = w, round(w / ratio[0])
        elif w / h > ratio[1]:
            cw, ch = round(h * ratio[1]), h
        else:
            cw, ch = w, h
        left, top = (w - cw) // 2, (h - ch) // 2
    return img.resize((size, size), Image.BILINEAR, box=(left, top, left + cw, top + ch))


class _FolderDataset(Dataset):
    """(uint8 [3, S, S], label) for sample i, its randomness fixed by (seed, epoch, i)."""

    def __init__(self, samples: Sequence[tuple[str, int]], *, size: int, resize: int,
                 augment: str | None, seed: int, epoch: int) -> None:
        self.samples, self.size, self.resize = samples, size, resize
        self.augment, self.seed, self.epoch = augment, seed, epoch

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        path, label = self.samples[i]
        img = read_image(path)
        rng = random.Random(derive_seed("stream", self.seed, self.epoch, i))
        if self.augment == "imagenet":
            img = random_resized_crop(img, size=self.size, rng=rng)
        else:
            img = resize_center_crop(img, size=self.size, resize=self.resize)
        if self.augment is not None and rng.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        return to_chw_uint8(img), label


def _default_workers() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(0, min(8, cpus - 1))


class ImageFolderStream:
    """An ImageFolder tree read image by image, with the same batch API as ImageSet.

    Args:
        samples: (path, label) pairs, in a fixed order (see `from_folder`).
        classes: class names; label i is classes[i].
        image_size: the side of the square crops.
        resize: shorter side before the evaluation centre crop (default image_size / 0.875,
            i.e. 256 for 224).
        mean, std: normalisation (default ImageNet's).
        num_workers: DataLoader worker processes (default: CPUs - 1, at most 8).
    """

    in_channels = 3

    def __init__(self, samples: Sequence[tuple[str, int]], *, classes: Sequence[str],
                 image_size: int = 224, resize: int | None = None,
                 mean: Sequence[float] = IMAGENET_STATS[0],
                 std: Sequence[float] = IMAGENET_STATS[1],
                 name: str = "", num_workers: int | None = None) -> None:
        if image_size < 1:
            raise ValueError(f"image_size must be positive, got {image_size}")
        self.samples = list(samples)
        self.classes = list(classes)
        self.image_size = image_size
        self.resize = resize or round(image_size / 0.875)
        self.mean, self.std = tuple(mean), tuple(std)
        self.name = name
        self.num_workers = _default_workers() if num_workers is None else num_workers
        self.normaliser = Normaliser(mean=self.mean, std=self.std)
        self.labels = torch.tensor([lab for _, lab in self.samples], dtype=torch.int64)

    @classmethod
    def from_folder(cls, root: str | Path, *, classes: Sequence[str] | None = None,
                    **kwargs) -> ImageFolderStream:
        """Scan `root/<class>/<images>` (classes sorted by name, files by path)."""
        found, samples = scan_image_folder(root, classes=classes)
        kwargs.setdefault("name", Path(root).name)
        return cls(samples, classes=found, **kwargs)

    def __len__(self) -> int:
        return len(self.samples)

    def __repr__(self) -> str:
        return (f"ImageFolderStream({self.name or 'unnamed'}: {len(self)} images, "
                f"{self.num_classes} classes, {self.image_size}px)")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, indices: Sequence[int] | torch.Tensor | range) -> ImageFolderStream:
        """The images at `indices`, in that order, with the same classes and transforms."""
        idx = as_index(indices).tolist()
        return ImageFolderStream([self.samples[i] for i in idx], classes=self.classes,
                                 image_size=self.image_size, resize=self.resize, mean=self.mean,
                                 std=self.std, name=self.name, num_workers=self.num_workers)

    def holdout_per_class(self, n: int, *, seed: int = 0
                          ) -> tuple[ImageFolderStream, ImageFolderStream]:
        """(training part, held-out part with `n` random images per class), fixed by `seed`."""
        train_idx, held_idx = per_class_split(self.labels, n, seed=seed, what=self.name)
        return self.subset(train_idx), self.subset(held_idx)

    def batches(self, batch_size: int, *, shuffle: bool = False, seed: int = 0, epoch: int = 0,
                augment: str | None = None, device: str | torch.device = "cpu",
                drop_last: bool = False, rank: int = 0, world_size: int = 1,
                channels_last: bool = False) -> Iterator[Batch]:
        """Yield (float32 normalised images, int64 labels) on `device`; see ImageSet.batches.

        augment: "imagenet" (random resized crop + flip), "flip" (centre crop + flip), or None
        (resize + centre crop)."""
        if augment is not None and augment not in STREAM_AUGMENTATIONS:
            raise ValueError(f"unknown augmentation {augment!r} for a streamed image folder; "
                             f"choose one of: None, {', '.join(STREAM_AUGMENTATIONS)}")
        raw = self._uint8_batches(batch_size, shuffle=shuffle, seed=seed, epoch=epoch,
                                  augment=augment, device=device, drop_last=drop_last,
                                  rank=rank, world_size=world_size)
        return ((self.normaliser(x, channels_last=channels_last), y) for x, y in raw)

    def fixed_batches(self, batch_size: int, *, device: str | torch.device = "cpu",
                      channels_last: bool = False) -> NormalisedBatches:
        """The whole stream in order, decoded once and kept on `device` as uint8 batches that
        are normalised as they are read (50,000 images at 224 px: 7.5 GB, not 30 GB)."""
        return NormalisedBatches(list(self._uint8_batches(batch_size, device=device)),
                                 self.normaliser, channels_last=channels_last)

    def _uint8_batches(self, batch_size: int, *, shuffle: bool = False, seed: int = 0,
                       epoch: int = 0, augment: str | None = None,
                       device: str | torch.device = "cpu", drop_last: bool = False,
                       rank: int = 0, world_size: int = 1) -> Iterator[Batch]:
        order = epoch_order(len(self), shuffle=shuffle, seed=seed, epoch=epoch, rank=rank,
                            world_size=world_size, drop_last=drop_last)
        plan = [order[s].tolist() for s in batch_slices(len(order), batch_size,
                                                        drop_last=drop_last)]
        dataset = _FolderDataset(self.samples, size=self.image_size, resize=self.resize,
                                 augment=augment, seed=seed, epoch=epoch)
        device = torch.device(device)
        loader = DataLoader(dataset, batch_sampler=plan, num_workers=self.num_workers,
                            pin_memory=device.type == "cuda")
        for x, y in loader:
            yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)
