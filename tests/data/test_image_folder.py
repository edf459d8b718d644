import random

import pytest
import torch
from datafiles import CLASS_COLOURS, write_image_tree

from efsnas.data import ImageFolderStream
from efsnas.data.folder import load_image_folder, scan_image_folder
from efsnas.data.stream import random_resized_crop
from efsnas.errors import DataError


def test_scan_sorts_classes_and_files(image_tree):
    classes, samples = scan_image_folder(image_tree / "train")
    assert classes == ["ant", "cat", "dog"]
    assert len(samples) == 18
    assert [lab for _, lab in samples] == [0] * 6 + [1] * 6 + [2] * 6
    assert [p for p, _ in samples] == sorted(p for p, _ in samples)


def test_in_memory_load_pixels_and_labels(image_tree):
    s = load_image_folder(image_tree / "train", image_size=12)
    assert s.images.shape == (18, 3, 12, 12) and s.num_classes == 3
    for i, colour in enumerate(CLASS_COLOURS.values()):  # a solid colour per class, CHW
        assert s.images[6 * i, :, 5, 7].tolist() == list(colour)
    assert s.images[6 * 2 + 4, :, 0, 0].tolist() == [4, 4, 4]  # the id pixel of dog/004.png
    # per-channel statistics in [0, 1] units, computed independently (population std)
    ref = s.images.double().div(255).permute(1, 0, 2, 3).reshape(3, -1)
    assert s.mean == pytest.approx(ref.mean(dim=1).tolist(), abs=1e-9)
    assert s.std == pytest.approx(ref.std(dim=1, unbiased=False).tolist(), abs=1e-6)


def test_validation_tree_uses_the_training_classes(image_tree, tmp_path):
    val = load_image_folder(image_tree / "val", image_size=8, classes=["ant", "bee", "cat",
                                                                       "dog"])
    assert val.labels.tolist() == [0, 0, 2, 2, 3, 3] and val.num_classes == 4
    with pytest.raises(DataError, match="classes the training set lacks: dog"):
        scan_image_folder(image_tree / "val", classes=["ant", "cat"])


def test_folder_errors(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    from PIL import Image

    Image.new("RGB", (4, 4)).save(flat / "a.png")
    with pytest.raises(DataError, match="one sub-folder per class.*1 images directly"):
        scan_image_folder(flat)
    (tmp_path / "tree" / "empty").mkdir(parents=True)
    (tmp_path / "tree" / "full").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "tree" / "full" / "a.png")
    with pytest.raises(DataError, match="class folders with no images.*: empty"):
        scan_image_folder(tmp_path / "tree")
    (tmp_path / "tree" / "empty" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="cannot read image .*broken.jpg"):
        load_image_folder(tmp_path / "tree", image_size=4)


def _stream(root, **kw):
    return ImageFolderStream.from_folder(root, image_size=8, num_workers=0, **kw)


def test_stream_batches_shapes_and_normalisation(image_tree):
    st = _stream(image_tree / "train", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    assert (len(st), st.num_classes, st.in_channels, st.image_size) == (18, 3, 3, 8)
    batches = list(st.batches(5))
    assert [len(y) for _, y in batches] == [5, 5, 5, 3]
    x, y = batches[0]
    assert x.shape == (5, 3, 8, 8) and x.dtype == torch.float32 and y.tolist() == [0] * 5
    # solid red ant images: red channel (1 - 0.5) / 0.5 = 1, green and blue -1, at the centre
    assert x[1, :, 4, 4].tolist() == pytest.approx([1.0, -1.0, -1.0])


def test_stream_order_and_augmentation_are_deterministic(image_tree):
    st = _stream(image_tree / "train")
    kw = dict(shuffle=True, seed=2, epoch=1, augment="imagenet")
    a, b = list(st.batches(4, **kw)), list(st.batches(4, **kw))
    assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))
    c = list(st.batches(4, **{**kw, "epoch": 2}))
    assert [y.tolist() for _, y in a] != [y.tolist() for _, y in c]
    # decoding in a worker process gives the very same batches (seeds are per image)
    st.num_workers = 1
    w = list(st.batches(4, **kw))
    assert all(torch.equal(xa, xb) for (xa, _), (xb, _) in zip(a, w))
    with pytest.raises(ValueError, match="unknown augmentation"):
        st.batches(4, augment="crop_flip")


def test_stream_shards_are_disjoint(image_tree):
    st = _stream(image_tree / "train")
    st.labels = torch.arange(len(st))  # follow images by index
    st.samples = [(p, i) for i, (p, _) in enumerate(st.samples)]
    got = [[int(v) for _, y in st.batches(4, shuffle=True, seed=1, rank=r, world_size=2,
                                          drop_last=True) for v in y] for r in (0, 1)]
    assert len(got[0]) == len(got[1]) == 8 and not set(got[0]) & set(got[1])


def test_holdout_per_class(image_tree):
    st = _stream(image_tree / "train")
    train, held = st.holdout_per_class(2, seed=0)
    assert len(held) == 6 and len(train) == 12
    assert torch.bincount(held.labels).tolist() == [2, 2, 2]
    assert not {p for p, _ in held.samples} & {p for p, _ in train.samples}
    assert held.samples == st.holdout_per_class(2, seed=0)[1].samples
    assert held.samples != st.holdout_per_class(2, seed=5)[1].samples
    fixed = held.fixed_batches(4, channels_last=True)
    assert sum(len(y) for _, y in fixed) == 6
    # held as uint8 (a quarter of float32's memory), read as the same normalised batches
    assert all(x.dtype == torch.uint8 for x, _ in fixed.raw)
    streamed = list(held.batches(4))
    assert len(fixed) == len(streamed) == 2
    for (x, y), (xs, ys) in zip(fixed, streamed):
        assert x.dtype == torch.float32 and x.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(x, xs)
        assert torch.equal(y, ys)
    with pytest.raises(DataError, match="too few to hold out 6 per class"):
        st.holdout_per_class(6, seed=0)


def test_random_resized_crop_size_and_bounds(tmp_path):
    from PIL import Image

    img = Image.new("RGB", (40, 20), (10, 20, 30))
    for seed in range(20):
        out = random_resized_crop(img, size=16, rng=random.Random(seed))
        assert out.size == (16, 16) and out.getpixel((8, 8)) == (10, 20, 30)


def test_non_square_images_are_centre_cropped(tmp_path):
    write_image_tree(tmp_path / "wide", per_class=1, size=(20, 10))
    s = load_image_folder(tmp_path / "wide", image_size=10)
    assert s.images.shape == (3, 3, 10, 10)
