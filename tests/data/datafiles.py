"""Tiny data sets written in the real on-disk formats, for the data package's tests.

Every image is distinguishable: pixel (0, 0, 0) of image k of a set holds k (its id), and one
known pixel (channel 1, row 2, column 3) holds 200, so a test can check the CHW layout and
follow images through splits.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np

KNOWN_PIXEL = (1, 2, 3)  # channel, row, column
KNOWN_VALUE = 200


def planes(n: int, *, channels: int, size: int, start: int = 0, seed: int = 0) -> np.ndarray:
    """uint8 [n, C*H*W] rows of colour planes (the CIFAR / ImageNet16 layout) with ids."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 150, size=(n, channels, size, size), dtype=np.uint8)
    x[:, 0, 0, 0] = np.arange(start, start + n)
    x[:, KNOWN_PIXEL[0], KNOWN_PIXEL[1], KNOWN_PIXEL[2]] = KNOWN_VALUE
    return x.reshape(n, -1)


def dump(path: Path, obj: object, *, protocol: int = 2) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))


def idx_bytes(arr: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes: magic 0x0000080<ndim>, big-endian sizes, data."""
    head = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big")
                                                     for d in arr.shape)
    return head + arr.astype(np.uint8).tobytes()


def write_idx_set(folder: Path, *, gz: bool, n_train: int = 30, n_test: int = 10) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for part, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        x[:, 0, 0] = np.arange(n)
        x[:, 2, 3] = KNOWN_VALUE
        y = np.arange(n, dtype=np.uint8) % 10
        for kind, arr in (("images-idx3-ubyte", x), ("labels-idx1-ubyte", y)):
            data = idx_bytes(arr)
            name = f"{part}-{kind}"
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (folder / name).write_bytes(data)
    return folder


# labels 1-based over 1000 classes; those above 120 must be dropped
IN16_TRAIN_LABELS = [1, 120, 121, 500, 7, 1000, 60, 2]
IN16_VAL_LABELS = [3, 999, 120]

CLASS_COLOURS = {"ant": (255, 0, 0), "cat": (0, 255, 0), "dog": (0, 0, 255)}


def write_image_tree(root: Path, *, per_class: int, size: tuple[int, int] = (12, 12)) -> Path:
    """root/<class>/<i>.png, each image a solid colour per class with a unique red-ish id."""
    from PIL import Image

    for c, colour in CLASS_COLOURS.items():
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            img = Image.new("RGB", size, colour)
            img.putpixel((0, 0), (i, i, i))
            img.save(root / c / f"{i:03d}.png")
    return root
