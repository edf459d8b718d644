from pathlib import Path

import pytest
import torch

import efsnas.data.registry as registry
from efsnas.data import ImageFolderStream, ImageSet, load_data
from efsnas.errors import DataError, UsageError

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


def image_ids(s: ImageSet) -> list[int]:
    return s.images[:, 0, 0, 0].tolist()  # the writers put each image's id in pixel (0, 0, 0)


def test_half_split_is_disjoint_complete_and_seeded(cifar10_dir):
    b = load_data("cifar10", root=str(cifar10_dir.parent), seed=0)
    assert (b.name, b.num_classes, b.in_channels, b.image_size) == ("cifar10", 10, 3, 32)
    assert (len(b.train), len(b.heldout), len(b.test)) == (10, 10, 6)
    tr, ho = image_ids(b.train), image_ids(b.heldout)
    assert not set(tr) & set(ho) and sorted(tr + ho) == list(range(20))
    # each image keeps its own label (the writer labels image i with i % 10)
    assert b.train.labels.tolist() == [i % 10 for i in tr]
    assert b.heldout.labels.tolist() == [i % 10 for i in ho]
    again = load_data("cifar10", root=str(cifar10_dir), seed=0)
    assert image_ids(again.train) == tr and image_ids(again.heldout) == ho
    other = load_data("cifar10", root=str(cifar10_dir), seed=1)
    assert set(image_ids(other.train)) != set(tr)
    assert (b.num_classes, b.in_channels, b.image_size, b.augment) == (10, 3, 32, "crop_flip")
    assert "CIFAR-10" in b.description and str(cifar10_dir) in b.description
    # labels travel with their images
    full = torch.cat([b.train.labels, b.heldout.labels])
    ids = torch.tensor(tr + ho)
    assert torch.equal(full, ids % 10)


def test_half_split_is_the_torch_generator_permutation(cifar10_dir):
    b = load_data("cifar10", root=str(cifar10_dir), seed=3)
    perm = torch.randperm(20, generator=torch.Generator().manual_seed(3))
    assert image_ids(b.train) == perm[:10].tolist() and image_ids(b.heldout) == perm[10:].tolist()


def test_per_class_split(cifar100_dir, cifar10_dir):
    b = load_data("cifar10", root=str(cifar10_dir), heldout_per_class=1)
    assert len(b.heldout) == 10 and torch.bincount(b.heldout.labels).tolist() == [1] * 10
    assert not set(image_ids(b.train)) & set(image_ids(b.heldout))
    assert "1 per class" in b.description
    with pytest.raises(DataError, match="too few"):
        load_data("cifar10", root=str(cifar10_dir), heldout="per_class")  # 50 of 2 per class


def test_max_train_and_max_heldout_take_stratified_subsets(idx_dirs):
    b = load_data("mnist", root=str(idx_dirs[1]), max_train=10, max_heldout=5, seed=0)
    assert len(b.train) == 10 and len(b.heldout) == 5
    assert torch.bincount(b.train.labels, minlength=10).max() <= 2
    assert b.train.num_classes == 10 and b.augment == "crop"
    same = load_data("mnist", root=str(idx_dirs[1]), max_train=10, max_heldout=5, seed=0)
    assert image_ids(same.train) == image_ids(b.train)


def test_imagenet16_bundle(imagenet16_dir):
    b = load_data("imagenet16-120", root=str(imagenet16_dir.parent))
    assert (b.num_classes, b.image_size, b.in_channels) == (120, 16, 3)
    assert len(b.train) + len(b.heldout) == 50 and len(b.test) == 2  # 5 of 8 kept per file


def test_image_size_resizes_in_memory_sets(cifar10_dir):
    b = load_data("cifar10", root=str(cifar10_dir), image_size=16)
    assert b.image_size == 16 and b.train.images.shape[-1] == 16 and b.test.image_size == 16
    x, _ = next(iter(b.train.batches(4, augment=b.augment)))
    assert x.shape == (4, 3, 16, 16)


def test_digits():
    b = load_data("digits", seed=0)
    assert (b.num_classes, b.in_channels, b.image_size) == (10, 1, 8)
    assert (len(b.train), len(b.heldout), b.test) == (898, 899, None)
    x, y = next(iter(b.train.batches(32, shuffle=True, augment=b.augment)))
    assert x.shape == (32, 1, 8, 8) and y.max() < 10


def test_unknown_name_and_missing_root(tmp_path):
    with pytest.raises(DataError, match="unknown data set 'svhn'; choose one of: auto, cifar10"):
        load_data("svhn")
    with pytest.raises(UsageError, match="cifar10 needs its folder"):
        load_data("cifar10")
    with pytest.raises(DataError, match="heldout must be"):
        load_data("digits", heldout="third")


def test_auto_falls_back_to_digits(monkeypatch, tmp_path):
    monkeypatch.setattr(registry, "FASHION_MNIST_DIR", tmp_path / "none")
    b = load_data("auto")
    assert b.name == "digits" and "auto: no Fashion-MNIST" in b.description


def test_auto_with_a_root_detects_the_format(cifar10_dir):
    assert load_data("auto", root=str(cifar10_dir.parent)).name == "cifar10"


@pytest.mark.skipif(not (DEBIAN_FASHION / "train-images-idx3-ubyte.gz").exists(),
                    reason="Debian's fashion-mnist package is not installed "
                           "(/usr/share/datasets/fashion-mnist)")
def test_fashion_mnist_from_debian():
    b = load_data("fashion-mnist", seed=0)
    assert (len(b.train), len(b.heldout), len(b.test)) == (30000, 30000, 10000)
    assert (b.num_classes, b.in_channels, b.image_size) == (10, 1, 28)
    assert str(DEBIAN_FASHION) in b.description
    assert torch.bincount(b.test.labels).tolist() == [1000] * 10
    assert load_data("auto").name == "fashion-mnist"


def test_imagefolder_small_tree_in_memory(image_tree):
    b = load_data("imagefolder", root=str(image_tree), heldout_per_class=2)
    assert isinstance(b.train, ImageSet) and isinstance(b.test, ImageSet)
    assert (b.num_classes, b.image_size, len(b.heldout), len(b.test)) == (3, 12, 6, 6)
    assert b.augment == "crop_flip" and b.test.mean == b.train.mean


def test_imagefolder_large_tree_is_streamed(image_tree, monkeypatch):
    monkeypatch.setattr(registry, "IN_MEMORY_BYTES", 0)
    b = load_data("imagefolder", root=str(image_tree), heldout_per_class=2, image_size=8)
    assert isinstance(b.train, ImageFolderStream) and isinstance(b.heldout, ImageFolderStream)
    assert b.augment == "imagenet" and len(b.heldout) == 6 and len(b.test) == 6
    b.train.num_workers = 0
    x, _ = next(iter(b.train.batches(4, shuffle=True, augment=b.augment)))
    assert x.shape == (4, 3, 8, 8)
