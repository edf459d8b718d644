import gzip
import os
import pickle

import numpy as np
import pytest
import torch
from datafiles import IN16_TRAIN_LABELS, IN16_VAL_LABELS, KNOWN_PIXEL, KNOWN_VALUE, dump, idx_bytes

from efsnas.data.formats import (
    CIFAR10_STATS,
    read_cifar10,
    read_cifar100,
    read_digits,
    read_idx_dataset,
    read_imagenet16,
)
from efsnas.errors import DataError

STATS = ((0.5,), (0.5,))


def test_cifar10_shapes_labels_and_chw_layout(cifar10_dir):
    raw = read_cifar10(cifar10_dir)
    train, test = raw.train, raw.test
    assert train.images.shape == (20, 3, 32, 32) and test.images.shape == (6, 3, 32, 32)
    assert train.labels.tolist() == [i % 10 for i in range(20)]
    assert train.num_classes == 10 and train.mean == CIFAR10_STATS[0]
    # row-major colour planes: byte c*1024 + y*32 + x is channel c, row y, column x
    c, y, x = KNOWN_PIXEL
    assert (train.images[:, c, y, x] == KNOWN_VALUE).all()
    assert train.images[:, 0, 0, 0].tolist() == list(range(20))  # batches in order 1..5
    assert str(cifar10_dir) in raw.source


def test_cifar10_accepts_the_parent_folder(cifar10_dir):
    assert len(read_cifar10(cifar10_dir.parent).train) == 20


def test_cifar10_missing_batch_is_named(cifar10_dir):
    (cifar10_dir / "data_batch_3").unlink()
    with pytest.raises(DataError) as e:
        read_cifar10(cifar10_dir.parent)
    msg = str(e.value)
    assert "missing: data_batch_3" in msg and "cifar-10-batches-py" in msg
    assert str(cifar10_dir) in msg


def test_cifar10_malformed_batch(cifar10_dir):
    dump(cifar10_dir / "data_batch_2", {b"data": np.zeros((4, 100), np.uint8),
                                        b"labels": [0, 1, 2, 3]})
    with pytest.raises(DataError, match=r"data_batch_2: 'data' should be a uint8 array \[N, 3072"):
        read_cifar10(cifar10_dir)
    dump(cifar10_dir / "data_batch_2", {b"data": np.zeros((4, 3072), np.uint8),
                                        b"labels": [0, 1, 2]})
    with pytest.raises(DataError, match="expected 4 integer labels"):
        read_cifar10(cifar10_dir)
    dump(cifar10_dir / "data_batch_2", {b"data": np.zeros((4, 3072), np.uint8),
                                        b"labels": [0, 1, 2, 10]})
    with pytest.raises(DataError, match=r"labels should be in 0\.\.9"):
        read_cifar10(cifar10_dir)
    dump(cifar10_dir / "data_batch_2", {b"pixels": 1})
    with pytest.raises(DataError, match="has no 'data' entry"):
        read_cifar10(cifar10_dir)


def test_cifar10_with_a_hostile_batch_is_refused(cifar10_dir, tmp_path):
    marker = tmp_path / "pwned"

    class Hostile:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    (cifar10_dir / "test_batch").write_bytes(pickle.dumps({b"data": Hostile()}, protocol=2))
    with pytest.raises(DataError, match="refusing to load"):
        read_cifar10(cifar10_dir)
    assert not marker.exists()


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_cifar10(tmp_path / "nowhere")


def test_cifar100_fine_labels_and_str_keys(cifar100_dir):
    raw = read_cifar100(cifar100_dir.parent)
    assert raw.train.labels.tolist() == [0, 99, 5, 5, 7, 42, 1, 2]
    assert raw.train.num_classes == 100 and raw.test.labels.tolist() == [3, 2, 1]
    assert (raw.train.images[:, 1, 2, 3] == KNOWN_VALUE).all()
    (cifar100_dir / "test").unlink()
    with pytest.raises(DataError, match="missing: test"):
        read_cifar100(cifar100_dir)


def test_imagenet16_keeps_120_classes_zero_based(imagenet16_dir):
    raw = read_imagenet16(imagenet16_dir.parent)
    keep = [lab - 1 for lab in IN16_TRAIN_LABELS if lab <= 120]
    assert raw.train.labels.tolist() == keep * 10
    assert raw.train.images.shape == (len(keep) * 10, 3, 16, 16)
    assert raw.train.num_classes == 120
    assert raw.test.labels.tolist() == [lab - 1 for lab in IN16_VAL_LABELS if lab <= 120]
    # the kept images are the right ones: ids of images whose label was <= 120
    kept_ids = [i for i, lab in enumerate(IN16_TRAIN_LABELS) if lab <= 120]
    assert raw.train.images[: len(kept_ids), 0, 0, 0].tolist() == kept_ids
    assert (raw.train.images[:, 1, 2, 3] == KNOWN_VALUE).all()
    (imagenet16_dir / "train_data_batch_10").unlink()
    with pytest.raises(DataError, match="missing: train_data_batch_10"):
        read_imagenet16(imagenet16_dir)


def test_idx_plain_and_gzip_agree(idx_dirs):
    plain, gz = (read_idx_dataset(d, title="MNIST", stats=STATS) for d in idx_dirs)
    assert plain.train.images.shape == (30, 1, 28, 28)
    assert plain.test.images.shape == (10, 1, 28, 28)
    assert torch.equal(plain.train.images, gz.train.images)
    assert torch.equal(plain.test.labels, gz.test.labels)
    assert plain.train.labels.tolist() == [i % 10 for i in range(30)]
    assert (plain.train.images[:, 0, 2, 3] == KNOWN_VALUE).all()  # row 2, column 3
    assert plain.train.images[:, 0, 0, 0].tolist() == list(range(30))


def test_idx_accepts_torchvision_raw_layout(tmp_path, idx_dirs):
    raw_dir = tmp_path / "tv" / "MNIST" / "raw"
    raw_dir.mkdir(parents=True)
    for f in idx_dirs[1].iterdir():
        (raw_dir / f.name).write_bytes(f.read_bytes())
    got = read_idx_dataset(tmp_path / "tv", title="MNIST", stats=STATS, subdirs=("MNIST/raw",))
    assert len(got.train) == 30


def test_idx_errors(idx_dirs):
    plain = idx_dirs[0]
    (plain / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match=r"missing: t10k-labels-idx1-ubyte\[\.gz\]"):
        read_idx_dataset(plain, title="MNIST", stats=STATS)
    labels = np.zeros(10, np.uint8)
    bad = bytearray(idx_bytes(labels))
    bad[2] = 0x0D  # float data
    (plain / "t10k-labels-idx1-ubyte").write_bytes(bytes(bad))
    with pytest.raises(DataError, match="magic number 0x00000801"):
        read_idx_dataset(plain, title="MNIST", stats=STATS)
    (plain / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(labels)[:-3])
    with pytest.raises(DataError, match="truncated"):
        read_idx_dataset(plain, title="MNIST", stats=STATS)
    (plain / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(9, np.uint8)))
    with pytest.raises(DataError, match="10 t10k images but 9 labels"):
        read_idx_dataset(plain, title="MNIST", stats=STATS)
    gz = idx_dirs[1] / "train-images-idx3-ubyte.gz"
    gz.write_bytes(gzip.compress(b"\x00" * 50)[:-8])
    with pytest.raises(DataError, match="cannot read IDX file"):
        read_idx_dataset(idx_dirs[1], title="MNIST", stats=STATS)


def test_digits_scaled_to_uint8():
    raw = read_digits()
    assert raw.train.images.shape == (1797, 1, 8, 8) and raw.test is None
    assert raw.train.images.dtype == torch.uint8 and int(raw.train.images.max()) == 255
    assert raw.train.num_classes == 10
    from sklearn.datasets import load_digits

    d = load_digits()
    assert raw.train.images[5, 0].tolist() == np.round(d.images[5] * 255 / 16).astype(int).tolist()
