"""One entry point, `load_data`: a data set by name, split into training and held-out parts.

The held-out part is what subnets are scored on during the search; the test set (when the data
set has one) is only for the final stand-alone evaluation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from efsnas.data.augment import resize_images
from efsnas.data.folder import load_image_folder, read_image, scan_image_folder
from efsnas.data.formats import (
    FASHION_MNIST_STATS,
    MNIST_STATS,
    RawData,
    read_cifar10,
    read_cifar100,
    read_digits,
    read_idx_dataset,
    read_imagenet16,
)
from efsnas.data.images import ImageSet
from efsnas.data.order import derive_seed
from efsnas.data.splits import half_split, per_class_split, stratified_subset
from efsnas.data.stream import ImageFolderStream
from efsnas.errors import DataError
from efsnas.registry import names, register_dataset

__all__ = ["DataBundle", "load_data", "DATASETS", "FASHION_MNIST_DIR", "dataset_names"]

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian's fashion-mnist package
IN_MEMORY_BYTES = 2 << 30  # image folders larger than this at the target size are streamed
Part = ImageSet | ImageFolderStream


@dataclass
class DataBundle:
    """A data set ready for a run: training part, held-out scoring part, optional test set."""

    name: str
    description: str  # e.g. "Fashion-MNIST (IDX files in /usr/share/datasets/fashion-mnist); ..."
    train: Part
    heldout: Part
    test: Part | None
    num_classes: int
    in_channels: int
    image_size: int
    augment: str | None  # the standard training augmentation for this data set


# name -> (title, standard augmentation, reader(root, image_size) -> RawData-like)
def _need_root(name: str, root: str | None, what: str) -> str:
    if root is None:
        raise DataError(f"data set {name} needs its folder: pass root=... (data.root, "
                        f"--data-root) pointing at {what}")
    return root


def _fashion_root(root: str | None) -> str:
    return root if root is not None else str(FASHION_MNIST_DIR)


DATASETS: dict[str, tuple[str, str | None, Callable[[str | None, int | None], RawData]]] = {
    "cifar10": ("CIFAR-10", "crop_flip", lambda r, s: read_cifar10(
        _need_root("cifar10", r, "cifar-10-batches-py or its parent"))),
    "cifar100": ("CIFAR-100", "crop_flip", lambda r, s: read_cifar100(
        _need_root("cifar100", r, "cifar-100-python or its parent"))),
    "imagenet16-120": ("ImageNet16-120", "crop_flip", lambda r, s: read_imagenet16(
        _need_root("imagenet16-120", r, "the folder of train_data_batch_1..10 and val_data"))),
    "imagefolder": ("Image folder", None, lambda r, s: _read_imagefolder(
        _need_root("imagefolder", r, "root/<class>/<images> or root/train, root/val"), s)),
    "fashion-mnist": ("Fashion-MNIST", "crop_flip", lambda r, s: read_idx_dataset(
        _fashion_root(r), title="Fashion-MNIST", stats=FASHION_MNIST_STATS,
        subdirs=("fashion-mnist", "FashionMNIST/raw"))),
    "mnist": ("MNIST", "crop", lambda r, s: read_idx_dataset(
        _need_root("mnist", r, "the folder of the MNIST IDX files"), title="MNIST",
        stats=MNIST_STATS, subdirs=("mnist", "MNIST/raw"))),
    "digits": ("scikit-learn digits", "crop", lambda r, s: read_digits()),
}
for _name, _entry in DATASETS.items():  # one registry for every named component
    register_dataset(_name)(_entry)


def dataset_names() -> list[str]:
    """What `data.name` may be: "auto" (Fashion-MNIST when installed, else digits) and every
    registered data set."""
    return ["auto", *names("dataset")]
_ALIASES = {"cifar-10": "cifar10", "cifar-100": "cifar100", "imagenet16": "imagenet16-120",
            "fashionmnist": "fashion-mnist", "image-folder": "imagefolder"}


def _read_imagefolder(root: str, image_size: int | None) -> RawData:
    """root/<class>/... or root/train/<class>/... with an optional root/val (or test) tree.

    Decoded into memory when small (default size: the images' own, if at most 64 px), else
    streamed at image_size (default 224) with the ImageNet recipe."""
    base = Path(root).expanduser()
    train_dir = base / "train" if (base / "train").is_dir() else base
    test_dir = next((base / d for d in ("val", "test") if train_dir != base
                     and (base / d).is_dir()), None)
    classes, samples = scan_image_folder(train_dir)
    if image_size is None:
        w, h = read_image(samples[0][0]).size
        image_size = min(w, h) if max(w, h) <= 64 else 224
    if len(samples) * 3 * image_size ** 2 <= IN_MEMORY_BYTES:
        train = load_image_folder(train_dir, image_size=image_size, name="train")
        test = None if test_dir is None else load_image_folder(
            test_dir, image_size=image_size, classes=classes, stats=(train.mean, train.std),
            name=test_dir.name)
        return RawData(train, test, f"images in {base}, decoded at {image_size}px")
    train = ImageFolderStream(samples, classes=classes, image_size=image_size, name="train")
    test = None if test_dir is None else ImageFolderStream.from_folder(
        test_dir, classes=classes, image_size=image_size)
    return RawData(train, test, f"images streamed from {base} at {image_size}px")


def _detect(root: str) -> str:
    """The data set name whose files are in `root` (for name="auto" with a root)."""
    base = Path(root).expanduser()
    marks = [("cifar10", ["data_batch_1", "cifar-10-batches-py"]),
             ("cifar100", ["cifar-100-python"]),
             ("imagenet16-120", ["train_data_batch_1", "ImageNet16", "ImageNet16-120"]),
             ("idx", ["train-images-idx3-ubyte", "train-images-idx3-ubyte.gz"])]
    for name, files in marks:
        if any((base / f).exists() for f in files):
            if name == "idx":
                return "fashion-mnist" if "fashion" in str(base).lower() else "mnist"
            return name
    if (base / "train").is_file() and (base / "test").is_file():
        return "cifar100"
    return "imagefolder"


def _resolve(name: str, root: str | None) -> tuple[str, str]:
    key = _ALIASES.get(name.lower().replace("_", "-"), name.lower().replace("_", "-"))
    if key == "auto":
        if root is not None:
            found = _detect(root)
            return found, f"auto: detected in {root}"
        if any((FASHION_MNIST_DIR / f).is_file() for f in ("train-images-idx3-ubyte.gz",
                                                            "train-images-idx3-ubyte")):
            return "fashion-mnist", "auto: found on this machine"
        return "digits", f"auto: no Fashion-MNIST in {FASHION_MNIST_DIR}"
    if key not in DATASETS:
        raise DataError(f"unknown data set {name!r}; choose one of: "
                        f"{', '.join(dataset_names())}")
    return key, ""


def load_data(name: str, *, root: str | None = None, seed: int = 0, heldout: str = "half",
              heldout_per_class: int | None = None, image_size: int | None = None,
              max_train: int | None = None, max_heldout: int | None = None) -> DataBundle:
    """Load data set `name` and split its training set into training and held-out parts.

    Args:
        name: auto, cifar10, cifar100, imagenet16-120, imagefolder, fashion-mnist, mnist or
            digits. "auto" picks Fashion-MNIST from /usr/share/datasets/fashion-mnist when it is
            there, else scikit-learn's digits (or, given a root, what the folder holds).
        root: the folder holding the files (see each reader for the layout).
        seed: fixes the split and the subsets.
        heldout: "half" (NAS-Bench-201: a random half of the training set, 25,000 / 25,000 on
            CIFAR-10) or "per_class" (heldout_per_class images of each class, default 50: the
            ImageNet recipe). Giving heldout_per_class implies "per_class".
        image_size: resize in-memory sets (bilinear, antialiased); crop size of streamed ones.
        max_train, max_heldout: keep a stratified random subset of that many images.
    """
    key, note = _resolve(name, root)
    if heldout not in ("half", "per_class"):
        raise DataError(f"heldout must be 'half' or 'per_class', got {heldout!r}")
    if image_size is not None and image_size < 1:
        raise DataError(f"image_size must be positive, got {image_size}")
    for arg, v in (("max_train", max_train), ("max_heldout", max_heldout),
                   ("heldout_per_class", heldout_per_class)):
        if v is not None and v < 1:
            raise DataError(f"{arg} must be at least 1, got {v}")
    title, augment, reader = DATASETS[key]
    raw = reader(root, image_size)
    full, test = raw.train, raw.test
    if image_size is not None and isinstance(full, ImageSet):
        full = full.with_images(resize_images(full.images, image_size))
        if isinstance(test, ImageSet):
            test = test.with_images(resize_images(test.images, image_size))
    if isinstance(full, ImageFolderStream):
        augment = "imagenet"
    elif key == "imagefolder":
        augment = "crop_flip"

    if heldout == "per_class" or heldout_per_class is not None:
        n = heldout_per_class or 50
        train_idx, held_idx = per_class_split(full.labels, n, seed=seed, what=f"{title} train")
        how = f"{n} per class held out"
    else:
        train_idx, held_idx = half_split(len(full), seed=seed)
        how = "half split"
    train, held = full.subset(train_idx), full.subset(held_idx)
    if max_train is not None and max_train < len(train):
        train = train.subset(stratified_subset(train.labels, max_train,
                                               seed=derive_seed("max_train", seed)))
    if max_heldout is not None and max_heldout < len(held):
        held = held.subset(stratified_subset(held.labels, max_heldout,
                                             seed=derive_seed("max_heldout", seed)))
    train.name, held.name = f"{key}-train", f"{key}-heldout"

    source = f"{raw.source}; {note}" if note else raw.source
    sizes = f"train {len(train)} / held-out {len(held)} ({how}, seed {seed})"
    sizes += f"; test {len(test)}" if test is not None else "; no test set"
    return DataBundle(name=key, description=f"{title} ({source}); {sizes}", train=train,
                      heldout=held, test=test, num_classes=full.num_classes,
                      in_channels=full.in_channels, image_size=full.image_size, augment=augment)
