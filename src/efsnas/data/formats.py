"""Readers of the standard on-disk image formats, each returning in-memory ImageSets.

CIFAR-10/100 and ImageNet16-120 are python pickles (read with `safe_load`, which refuses code),
MNIST and Fashion-MNIST are IDX files, scikit-learn's digits come with scikit-learn. Every
reader says what it expected where when a file is missing or malformed.
"""

from __future__ import annotations

import gzip
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from efsnas.data.images import ImageSet
from efsnas.data.safe_pickle import get_key, safe_load
from efsnas.errors import DataError

__all__ = ["RawData", "read_cifar10", "read_cifar100", "read_imagenet16", "read_idx",
           "read_idx_dataset", "read_digits", "find_folder", "CIFAR10_STATS", "CIFAR100_STATS",
           "IMAGENET16_STATS", "MNIST_STATS", "FASHION_MNIST_STATS"]

# per-channel (mean, std) of pixels in [0, 1], over each training set
CIFAR10_STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
CIFAR100_STATS = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
IMAGENET16_STATS = (tuple(v / 255 for v in (122.68, 116.66, 104.01)),  # NAS-Bench-201's values
                    tuple(v / 255 for v in (63.22, 61.26, 65.09)))
MNIST_STATS = ((0.1307,), (0.3081,))
FASHION_MNIST_STATS = ((0.2860,), (0.3530,))


@dataclass
class RawData:
    """A data set as published: its training set, its test set (if any), and where it was."""

    train: ImageSet
    test: ImageSet | None
    source: str  # e.g. "python pickles in /data/cifar-10-batches-py"


def find_folder(root: str | Path, *, marker: str, subdirs: tuple[str, ...]) -> Path:
    """`root` if it holds `marker`, else the first of `root/<subdir>` that does, else `root`."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist (or is not a folder)")
    if (root / marker).is_file():
        return root
    for sub in subdirs:
        if (root / sub / marker).is_file():
            return root / sub
    for sub in subdirs:  # report missing files against the folder the user most likely meant
        if (root / sub).is_dir():
            return root / sub
    return root


def _require(folder: Path, names: list[str], *, what: str, expect: str) -> None:
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise DataError(f"{what} folder {folder} must hold {expect}; missing: "
                        f"{', '.join(missing)}")


def _pixels(data: object, *, where: str, channels: int, size: int) -> np.ndarray:
    """A pickled uint8 [N, C*H*W] array of row-major colour planes -> [N, C, H, W]."""
    row = channels * size * size
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError) as e:  # rows of different lengths
        raise DataError(f"{where}: 'data' should be a uint8 array [N, {row}]: {e}") from None
    if arr.ndim != 2 or arr.shape[1] != row:
        raise DataError(f"{where}: 'data' should be a uint8 array [N, {row}] ({channels} planes "
                        f"of {size}x{size}), got shape {arr.shape}")
    if arr.dtype != np.uint8:
        if not np.issubdtype(arr.dtype, np.integer) or (arr.size and (arr.min() < 0
                                                                       or arr.max() > 255)):
            raise DataError(f"{where}: 'data' should hold uint8 pixels, got {arr.dtype}")
        arr = arr.astype(np.uint8)
    return arr.reshape(-1, channels, size, size)


def _labels(data: object, n: int, *, where: str, low: int, high: int) -> np.ndarray:
    try:
        lab = np.asarray(data)
    except (ValueError, TypeError) as e:  # a ragged list
        raise DataError(f"{where}: expected {n} integer labels: {e}") from None
    if lab.ndim != 1 or len(lab) != n or not np.issubdtype(lab.dtype, np.integer):
        raise DataError(f"{where}: expected {n} integer labels, got {lab.dtype} {lab.shape}")
    if n and (lab.min() < low or lab.max() > high):
        raise DataError(f"{where}: labels should be in {low}..{high}, found "
                        f"{lab.min()}..{lab.max()}")
    return lab.astype(np.int64)


def _read_batches(folder: Path, names: list[str], *, label_key: str, classes: int,
                  channels: int = 3, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for name in names:
        where = str(folder / name)
        d = safe_load(folder / name)
        x = _pixels(get_key(d, "data", where=where), where=where, channels=channels, size=size)
        ys.append(_labels(get_key(d, label_key, where=where), len(x), where=where, low=0,
                          high=classes - 1))
        xs.append(x)
    return np.concatenate(xs), np.concatenate(ys)


def _image_set(x: np.ndarray, y: np.ndarray, *, stats, name: str, classes: int) -> ImageSet:
    if not (x.flags.writeable and x.flags.c_contiguous):  # e.g. a view of an IDX file's bytes
        x = np.array(x, order="C")
    return ImageSet(torch.from_numpy(x), torch.from_numpy(y),
                    mean=stats[0], std=stats[1], name=name, num_classes=classes)


def read_cifar10(root: str | Path) -> RawData:
    """CIFAR-10, python version: `cifar-10-batches-py` (data_batch_1..5, test_batch) or its
    parent. Each file is a pickled dict: 'data' uint8 [N, 3072] (R, G, B planes of 32x32,
    row-major) and 'labels'."""
    folder = find_folder(root, marker="data_batch_1", subdirs=("cifar-10-batches-py",))
    train_names = [f"data_batch_{i}" for i in range(1, 6)]
    _require(folder, [*train_names, "test_batch"], what="CIFAR-10",
             expect="data_batch_1..5 and test_batch (the python version, cifar-10-batches-py)")
    sets = []
    for names, part in ((train_names, "train"), (["test_batch"], "test")):
        x, y = _read_batches(folder, names, label_key="labels", classes=10)
        sets.append(_image_set(x, y, stats=CIFAR10_STATS, name=f"cifar10-{part}", classes=10))
    return RawData(sets[0], sets[1], f"python pickles in {folder}")


def read_cifar100(root: str | Path) -> RawData:
    """CIFAR-100, python version: `cifar-100-python` (train, test; 'fine_labels') or its
    parent."""
    folder = find_folder(root, marker="train", subdirs=("cifar-100-python",))
    _require(folder, ["train", "test"], what="CIFAR-100",
             expect="train and test (the python version, cifar-100-python)")
    sets = []
    for part in ("train", "test"):
        x, y = _read_batches(folder, [part], label_key="fine_labels", classes=100)
        sets.append(_image_set(x, y, stats=CIFAR100_STATS, name=f"cifar100-{part}",
                               classes=100))
    return RawData(sets[0], sets[1], f"python pickles in {folder}")


def read_imagenet16(root: str | Path, *, classes: int = 120) -> RawData:
    """ImageNet16-120 as NAS-Bench-201 uses it: the 16x16 downsampled ImageNet pickles
    train_data_batch_1..10 and val_data ('data' uint8 [N, 768], 'labels' 1..1000), keeping
    the images of classes 1..`classes`, relabelled 0-based."""
    folder = find_folder(root, marker="train_data_batch_1",
                         subdirs=("ImageNet16", "ImageNet16-120", "imagenet16"))
    train_names = [f"train_data_batch_{i}" for i in range(1, 11)]
    _require(folder, [*train_names, "val_data"], what="ImageNet16",
             expect="train_data_batch_1..10 and val_data (the 16x16 downsampled ImageNet "
                    "pickles used by NAS-Bench-201)")
    sets = []
    for names, part in ((train_names, "train"), (["val_data"], "val")):
        xs, ys = [], []
        for name in names:  # filter file by file: the full 1000-class set is ~1 GB
            where = str(folder / name)
            d = safe_load(folder / name)
            x = _pixels(get_key(d, "data", where=where), where=where, channels=3, size=16)
            y = _labels(get_key(d, "labels", where=where), len(x), where=where, low=1,
                        high=1000)
            keep = y <= classes
            xs.append(x[keep])
            ys.append(y[keep] - 1)
        sets.append(_image_set(np.concatenate(xs), np.concatenate(ys), stats=IMAGENET16_STATS,
                               name=f"imagenet16-{classes}-{part}", classes=classes))
    return RawData(sets[0], sets[1], f"16x16 pickles in {folder}")


# ---- IDX (MNIST, Fashion-MNIST) ----------------------------------------------------------
def _idx_file(folder: Path, stem: str) -> Path | None:
    kind, rest = stem.rsplit("-", 1)  # "train-images", "idx3-ubyte"
    for name in (stem, f"{kind}.{rest}"):  # train-images-idx3-ubyte or train-images.idx3-ubyte
        for suffix in ("", ".gz"):
            if (folder / (name + suffix)).is_file():
                return folder / (name + suffix)
    return None


def read_idx(path: Path, *, ndim: int) -> np.ndarray:
    """One IDX file (plain or .gz) of unsigned bytes with `ndim` dimensions."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:  # a damaged .gz raises any of these
        raise DataError(f"cannot read IDX file {path}: {e}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or raw[3] != ndim:
        raise DataError(f"{path} is not an IDX file of unsigned bytes with {ndim} dimensions "
                        f"(magic number 0x0000080{ndim}, found 0x{raw[:4].hex() or 'nothing'})")
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise DataError(f"{path} is truncated (no complete IDX header)")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    if len(raw) - head != math.prod(dims):  # exact: np.prod wraps 2**22 x 2**21 x 2**21 to 0
        raise DataError(f"{path}: header says {'x'.join(map(str, dims))} = {math.prod(dims)} "
                        f"bytes of data, the file holds {len(raw) - head} (truncated?)")
    return np.frombuffer(raw, dtype=np.uint8, offset=head).reshape(dims)


def read_idx_dataset(root: str | Path, *, title: str, stats, subdirs: tuple[str, ...] = ()
                     ) -> RawData:
    """MNIST-style IDX files: train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-
    idx3-ubyte, t10k-labels-idx1-ubyte, each optionally .gz (also torchvision's `<name>/raw`)."""
    folder = Path(root).expanduser()
    for sub in ("", *subdirs):
        if _idx_file(folder / sub, "train-images-idx3-ubyte") is not None:
            folder = folder / sub
            break
    if not folder.is_dir():
        raise DataError(f"{title} folder {folder} does not exist (or is not a folder)")
    sets = []
    for part in ("train", "t10k"):
        paths = {k: _idx_file(folder, f"{part}-{k}") for k in ("images-idx3-ubyte",
                                                                "labels-idx1-ubyte")}
        missing = [f"{part}-{k}[.gz]" for k, p in paths.items() if p is None]
        if missing:
            raise DataError(f"{title} folder {folder} must hold the IDX files train-images-"
                            f"idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and "
                            f"t10k-labels-idx1-ubyte (each may be .gz); missing: "
                            f"{', '.join(missing)}")
        x = read_idx(paths["images-idx3-ubyte"], ndim=3)
        y = read_idx(paths["labels-idx1-ubyte"], ndim=1)
        if len(x) != len(y):
            raise DataError(f"{folder}: {len(x)} {part} images but {len(y)} labels")
        where = str(paths["labels-idx1-ubyte"])
        y = _labels(y, len(x), where=where, low=0, high=9)
        sets.append(_image_set(x[:, None], y, stats=stats, classes=10,
                               name=f"{title.lower()}-{'test' if part == 't10k' else part}"))
    return RawData(sets[0], sets[1], f"IDX files in {folder}")


def read_digits() -> RawData:
    """scikit-learn's 8x8 digits (1,797 images, values 0..16 scaled to 0..255); no test set."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.round(d.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)[:, None]
    mean = float(x.mean()) / 255
    std = float(x.std()) / 255  # grayscale, no published constants: from the data
    s = _image_set(x, d.target.astype(np.int64), stats=((mean,), (std,)), name="digits",
                   classes=10)
    return RawData(s, None, "scikit-learn's load_digits, 8x8")
