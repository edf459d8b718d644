import pytest
import torch

from efsnas.data import ImageSet
from efsnas.data.augment import augment_batch, resize_images
from efsnas.data.order import epoch_order


def make_set(n=40, *, channels=3, size=16, classes=None) -> ImageSet:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, channels, size, size), generator=g, dtype=torch.uint8)
    labels = torch.arange(n) if classes is None else torch.arange(n) % classes
    return ImageSet(images, labels, mean=[0.5] * channels, std=[0.25] * channels, name="toy")


def ids(batches) -> list[int]:
    """The labels visited, which are the image ids in make_set(classes=None)."""
    return [int(v) for _, y in batches for v in y]


def test_properties_and_subset():
    s = make_set(10, channels=1, size=8, classes=4)
    assert (len(s), s.in_channels, s.image_size, s.num_classes) == (10, 1, 8, 4)
    sub = s.subset([9, 0, 4])
    assert sub.labels.tolist() == [1, 0, 0]
    assert torch.equal(sub.images[0], s.images[9])
    # a subset keeps the data set's class count even when it lacks the last class
    assert s.subset([0, 4]).num_classes == 4
    assert ImageSet(s.images, s.labels, mean=[0.1], std=[0.2], num_classes=7).num_classes == 7


def test_constructor_rejects_bad_inputs():
    x = torch.zeros(4, 3, 8, 8, dtype=torch.uint8)
    with pytest.raises(ValueError, match="uint8"):
        ImageSet(x.float(), torch.zeros(4), mean=[0] * 3, std=[1] * 3)
    with pytest.raises(ValueError, match="4 images but 3 labels"):
        ImageSet(x, torch.zeros(3), mean=[0] * 3, std=[1] * 3)
    with pytest.raises(ValueError, match="one per channel"):
        ImageSet(x, torch.zeros(4), mean=[0], std=[1])


def test_batches_are_normalised_float_on_the_device():
    s = make_set(12)
    x, y = next(iter(s.batches(5)))
    assert x.dtype == torch.float32 and x.shape == (5, 3, 16, 16) and y.dtype == torch.int64
    expected = (s.images[:5].float() / 255 - 0.5) / 0.25
    torch.testing.assert_close(x, expected)
    assert ids(s.batches(5)) == list(range(12))  # no shuffle: in order, last batch short
    assert [len(y) for _, y in s.batches(5, drop_last=True)] == [5, 5]


def test_order_depends_only_on_seed_and_epoch():
    s = make_set(40)
    a = ids(s.batches(8, shuffle=True, seed=3, epoch=2))
    assert a == ids(s.batches(8, shuffle=True, seed=3, epoch=2))
    assert sorted(a) == list(range(40))
    assert a != ids(s.batches(8, shuffle=True, seed=3, epoch=3))
    assert a != ids(s.batches(8, shuffle=True, seed=4, epoch=2))
    assert ids(s.batches(8, shuffle=True, seed=0, epoch=1)) != ids(
        s.batches(8, shuffle=True, seed=1, epoch=0))


def test_batches_leave_the_global_rng_alone():
    s = make_set(20)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    list(s.batches(4, shuffle=True, augment="crop_flip", seed=5))
    assert torch.equal(torch.get_rng_state(), state)


def test_a_resumed_epoch_sees_the_same_batches():
    s = make_set(40)
    run = list(s.batches(8, shuffle=True, seed=1, epoch=4, augment="crop_flip"))
    resumed = list(s.batches(8, shuffle=True, seed=1, epoch=4, augment="crop_flip"))[2:]
    for (xa, ya), (xb, yb) in zip(run[2:], resumed):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


@pytest.mark.parametrize("n", [40, 41, 43])
def test_two_ranks_get_disjoint_equal_shards(n):
    s = make_set(n)
    kw = dict(shuffle=True, seed=7, epoch=1, drop_last=True)
    r0, r1 = (ids(s.batches(4, rank=r, world_size=2, **kw)) for r in (0, 1))
    assert len(r0) == len(r1) == (n // 2) // 4 * 4
    assert not set(r0) & set(r1)
    # without drop_last the tail is padded: equal counts and every image seen
    kw["drop_last"] = False
    r0, r1 = (ids(s.batches(4, rank=r, world_size=2, **kw)) for r in (0, 1))
    assert len(r0) == len(r1) == -(-n // 2)
    assert set(r0) | set(r1) == set(range(n))
    assert len(list(s.batches(4, rank=0, world_size=2, **kw))) == len(
        list(s.batches(4, rank=1, world_size=2, **kw)))


def test_shards_partition_the_single_process_epoch():
    order = epoch_order(20, shuffle=True, seed=2, epoch=0)
    shards = [epoch_order(20, shuffle=True, seed=2, epoch=0, rank=r, world_size=4)
              for r in range(4)]
    assert sorted(torch.cat(shards).tolist()) == sorted(order.tolist())
    assert shards[1].tolist() == order[1::4].tolist()
    with pytest.raises(ValueError, match="rank"):
        epoch_order(5, shuffle=False, seed=0, epoch=0, rank=2, world_size=2)


def _is_crop_of(out: torch.Tensor, img: torch.Tensor, pad: int, flips: bool) -> bool:
    padded = torch.nn.functional.pad(img, (pad, pad, pad, pad))
    h, w = img.shape[-2:]
    for oy in range(2 * pad + 1):
        for ox in range(2 * pad + 1):
            crop = padded[:, oy:oy + h, ox:ox + w]
            if torch.equal(out, crop) or (flips and torch.equal(out, crop.flip(-1))):
                return True
    return False


def test_crop_flip_gives_padded_crops_and_flips():
    s = make_set(32, size=16)
    x = s.images
    gen = torch.Generator().manual_seed(0)
    out = augment_batch(x, "crop_flip", gen=gen)
    assert out.shape == x.shape and out.dtype == torch.uint8
    assert not torch.equal(out, x)
    assert all(_is_crop_of(out[i], x[i], pad=2, flips=True) for i in range(len(x)))
    flipped = augment_batch(x, "flip", gen=torch.Generator().manual_seed(1))
    was_flipped = [torch.equal(flipped[i], x[i].flip(-1)) for i in range(len(x))]
    assert all(f or torch.equal(flipped[i], x[i]) for i, f in enumerate(was_flipped))
    assert 0 < sum(was_flipped) < len(x)  # p = 0.5 over 32 images
    crop = augment_batch(x, "crop", gen=torch.Generator().manual_seed(2))
    assert all(_is_crop_of(crop[i], x[i], pad=2, flips=False) for i in range(len(x)))


def test_padding_is_black_before_normalisation():
    x = torch.full((64, 1, 8, 8), 255, dtype=torch.uint8)
    out = augment_batch(x, "crop", gen=torch.Generator().manual_seed(0))
    assert (out == 0).any()  # some crop reaches into the zero padding (pad = 1 for 8x8)
    s = ImageSet(x, torch.zeros(64), mean=[0.5], std=[0.5])
    xb, _ = next(iter(s.batches(64, augment="crop")))
    assert xb.min().item() == pytest.approx(-1.0)  # (0 / 255 - 0.5) / 0.5


def test_augmentation_is_seeded_by_seed_epoch_and_batch():
    s = make_set(16, size=32)
    a = [x for x, _ in s.batches(8, augment="crop_flip", seed=0, epoch=0)]
    b = [x for x, _ in s.batches(8, augment="crop_flip", seed=0, epoch=0)]
    c = [x for x, _ in s.batches(8, augment="crop_flip", seed=0, epoch=1)]
    plain = [x for x, _ in s.batches(8)]
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.equal(a[0], c[0])
    assert not torch.equal(a[0], plain[0]) and a[0].shape == plain[0].shape
    with pytest.raises(ValueError, match="unknown augmentation"):
        s.batches(8, augment="imagenet")


def test_fixed_batches_hold_the_whole_set_in_order():
    s = make_set(23)
    fixed = s.fixed_batches(10, device="cpu", channels_last=True)
    assert [len(y) for _, y in fixed] == [10, 10, 3]
    assert ids(fixed) == list(range(23))
    assert fixed[0][0].is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(torch.cat([x for x, _ in fixed]),
                               torch.cat([x for x, _ in s.batches(10)]))


def test_device_copy_is_made_once():
    s = make_set(8)
    first = s.on_device("cpu")[0]
    list(s.batches(4))
    assert s.on_device("cpu")[0] is first


def test_resize_images_is_bilinear_with_antialias():
    x = torch.zeros(2, 1, 8, 8, dtype=torch.uint8)
    x[:, :, :, 4:] = 200
    out = resize_images(x, 4)
    assert out.shape == (2, 1, 4, 4) and out.dtype == torch.uint8
    # plain bilinear would give [0, 0, 200, 200]; the antialiasing filter blends neighbours
    assert out[0, 0, 0].tolist() == [0, 25, 175, 200]
    assert resize_images(x, 8) is x
