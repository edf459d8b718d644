"""Fixtures: tiny data sets in the real formats (writers in datafiles.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from datafiles import (
    IN16_TRAIN_LABELS,
    IN16_VAL_LABELS,
    dump,
    planes,
    write_idx_set,
    write_image_tree,
)


@pytest.fixture
def cifar10_dir(tmp_path: Path) -> Path:
    """cifar-10-batches-py with 5 training batches of 4 images (ids 0..19) and 6 test images.

    Dicts with bytes keys pickled with protocol 2, as torchvision's tests write them."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for b in range(5):
        labels = [(4 * b + i) % 10 for i in range(4)]
        dump(folder / f"data_batch_{b + 1}",
             {b"batch_label": f"training batch {b + 1} of 5".encode(),
              b"data": planes(4, channels=3, size=32, start=4 * b, seed=b), b"labels": labels,
              b"filenames": [f"img{4 * b + i}.png".encode() for i in range(4)]})
    dump(folder / "test_batch", {b"data": planes(6, channels=3, size=32, seed=9),
                                 b"labels": [0, 1, 2, 3, 4, 5]})
    dump(folder / "batches.meta", {b"label_names": [f"c{i}".encode() for i in range(10)]})
    return folder


@pytest.fixture
def cifar100_dir(tmp_path: Path) -> Path:
    """cifar-100-python with str keys (a Python 2 file read with latin1 has str keys)."""
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    dump(folder / "train", {"data": planes(8, channels=3, size=32),
                            "fine_labels": [0, 99, 5, 5, 7, 42, 1, 2],
                            "coarse_labels": [0] * 8})
    dump(folder / "test", {"data": planes(3, channels=3, size=32, seed=1),
                           "fine_labels": [3, 2, 1], "coarse_labels": [0] * 3})
    dump(folder / "meta", {"fine_label_names": [f"f{i}" for i in range(100)]})
    return folder


@pytest.fixture
def imagenet16_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "ImageNet16"
    folder.mkdir()
    for b in range(1, 11):
        dump(folder / f"train_data_batch_{b}",
             {"data": planes(8, channels=3, size=16, start=8 * (b - 1), seed=b),
              "labels": IN16_TRAIN_LABELS, "mean": np.zeros(768, dtype=np.float32)})
    dump(folder / "val_data", {"data": planes(3, channels=3, size=16, seed=11),
                               "labels": IN16_VAL_LABELS})
    return folder


@pytest.fixture
def idx_dirs(tmp_path: Path) -> tuple[Path, Path]:
    """The same tiny MNIST-style set written plain and gzipped."""
    return (write_idx_set(tmp_path / "plain", gz=False),
            write_idx_set(tmp_path / "gz", gz=True))


@pytest.fixture
def image_tree(tmp_path: Path) -> Path:
    """root/train (6 images per class) and root/val (2 per class), 12x12 PNGs."""
    write_image_tree(tmp_path / "tree" / "train", per_class=6)
    write_image_tree(tmp_path / "tree" / "val", per_class=2)
    return tmp_path / "tree"
