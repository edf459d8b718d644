"""Ground truth from the official NAS-Bench-201 and NATS-Bench (topology) files.

Read through the benchmarks' own packages (`pip install "efsnas[benchmarks]"`):
- NAS-Bench-201 `.pth` files (v1.0, v1.1) with nas_201_api;
- NATS-Bench topology files with nats_bench: the `NATS-tss-v1_0-3ffb9-simple` (or `-full`) folder
  of per-architecture `.pickle.pbz2` files, or the single `NATS-tss-v1_0-3ffb9.pickle.pbz2`.

An accuracy is the mean over the seeds trained (`is_random=False`) after the last epoch of the
`hp` schedule (200 epochs by default). Which benchmark record a (dataset, metric) reads, as in the
packages' own `remap_dataset_set_names`:

    cifar10 test                  'cifar10' test-accuracy         (ori-test, trained on train+valid)
    cifar10 valid                 'cifar10-valid' valid-accuracy  (x-valid, trained on train)
    cifar100 / ImageNet16-120 valid  valid-accuracy  (x-valid: half of the original test set)
    cifar100 / ImageNet16-120 test   test-accuracy   (x-test: the other half)

Cells keep the packages' text form (`|nor_conv_3x3~0|+|...|+|...|`), which is efsnas's own.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import warnings
from pathlib import Path

from efsnas.errors import UsageError

DATASETS = {"cifar10": 10, "cifar100": 100, "ImageNet16-120": 120}  # name -> classes
METRICS = ("test", "valid")
HPS = ("12", "200")  # training epochs of the two schedules both benchmarks hold
DEFAULTS = {"dataset": "cifar10", "metric": "test", "hp": "200"}

SUFFIXES = (".pth", ".pickle", ".pbz2", ".pkl")
PREFIXES = ("nas-bench-201", "nats-tss", "nats-sss")
PACKAGES = {"nas_201_api": "nas-bench-201", "nats_bench": "nats_bench"}  # module -> pip name


def is_official(path: Path) -> bool:
    """Whether a ground-truth path names an official benchmark file (else: a JSON mapping)."""
    name = path.name.lower()
    return path.is_dir() or name.endswith(SUFFIXES) or name.startswith(PREFIXES)


def check_column(*, dataset: str | None = None, metric: str | None = None,
                 hp: str | None = None) -> None:
    """UsageError naming the valid values for an unknown dataset, metric or hp."""
    for what, value, valid in (("dataset", dataset, tuple(DATASETS)), ("metric", metric, METRICS),
                               ("hp", hp, HPS)):
        if value is not None and value not in valid:
            raise UsageError(f"unknown benchmark {what} {value!r}; choose from "
                             f"{', '.join(valid)}")


def benchmark_key(dataset: str, metric: str) -> tuple[str, str]:
    """The benchmark's dataset name and the `get_more_info` key holding that accuracy."""
    check_column(dataset=dataset, metric=metric)
    if dataset == "cifar10" and metric == "valid":  # 'cifar10' is trained on train+valid
        return "cifar10-valid", "valid-accuracy"
    return dataset, f"{metric}-accuracy"


def load_official(path: str | os.PathLike, *, dataset: str = "cifar10", metric: str = "test",
                  hp: str = "200") -> dict[str, float]:
    """Cell -> accuracy on `dataset` (`metric`: test or valid) from an official file."""
    p = Path(path)
    check_column(hp=hp)
    bench_dataset, key = benchmark_key(dataset, metric)
    api = _open(p)
    out: dict[str, float] = {}
    for i in range(len(api)):
        arch = api.arch(i)
        try:
            info = api.get_more_info(i, bench_dataset, hp=hp, is_random=False)
        except Exception as e:  # the packages raise bare KeyError / ValueError / assertions
            raise UsageError(f"{p}: no {bench_dataset} results at hp={hp} for architecture {i} "
                             f"({arch}): {type(e).__name__}: {e}") from None
        if info.get(key) is None:
            raise UsageError(f"{p}: architecture {i} ({arch}) has no {key} on {bench_dataset} "
                             f"at hp={hp}")
        out[arch] = float(info[key])
    if not out:
        raise UsageError(f"{p}: the benchmark file holds no architecture")
    return out


def _package_for(p: Path) -> str:
    name = p.name.lower()
    if name.startswith("nats-sss"):
        raise UsageError(f"{p} is a NATS-Bench size (sss) file, whose architectures are channel "
                         "counts, not cells; pass the topology (tss) file")
    if p.is_dir():
        if not (p / "meta.pickle.pbz2").is_file():
            raise UsageError(f"{p} is a folder without meta.pickle.pbz2, so not a NATS-Bench "
                             "topology folder (NATS-tss-v1_0-3ffb9-simple or -full); for "
                             "NAS-Bench-201 pass its .pth file")
        return "nats_bench"
    return "nas_201_api" if name.endswith(".pth") or name.startswith("nas-bench-201") \
        else "nats_bench"


def _import(pkg: str, p: Path):
    try:
        return importlib.import_module(pkg)
    except ModuleNotFoundError as e:
        if e.name != pkg:
            raise
        raise UsageError(f"reading {p} needs the {PACKAGES[pkg]} package: pip install "
                         f'"efsnas[benchmarks]" (or pip install {PACKAGES[pkg]}), or pass a JSON '
                         "mapping cell -> accuracy instead") from None


@contextlib.contextmanager
def _full_unpickling():
    """Let nas_201_api's own `torch.load(path)` unpickle the whole file. Since torch 2.6 that
    call defaults to weights_only=True, which refuses anything but tensors and builtins (such as
    numpy scalars); handing the package an already loaded dict instead would deep-copy a
    multi-GB object. The file is the user's chosen benchmark file, as nats_bench's are, which
    that package unpickles in full anyway."""
    name = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"
    old = os.environ.get(name)
    forced_safe = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "0").lower() in (
        "1", "y", "yes", "true")
    if not forced_safe:  # the user's explicit choice wins
        os.environ[name] = "1"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def _open(p: Path):
    """The package's API object for an official file."""
    pkg = _package_for(p)
    mod = _import(pkg, p)
    try:
        if pkg == "nas_201_api":
            with _full_unpickling():
                return mod.NASBench201API(str(p), verbose=False)
        # a folder is read one architecture at a time (fast mode), the single archive at once
        return mod.create(str(p), "tss", fast_mode=p.is_dir(), verbose=False)
    except Exception as e:  # bare assertions, pickle and bz2 errors
        kind = "NAS-Bench-201 .pth" if pkg == "nas_201_api" else "NATS-Bench topology"
        raise UsageError(f"could not read {p} with {pkg} (is it a {kind} file?): "
                         f"{type(e).__name__}: {e}") from None
