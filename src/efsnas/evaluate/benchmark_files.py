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
    with _safe_loading(_package_for(p)):  # a NATS folder is read during the loop too
        return _read_all(p, bench_dataset, key, hp)


def _read_all(p: Path, bench_dataset: str, key: str, hp: str) -> dict[str, float]:
    api = _open(p)
    out: dict[str, float] = {}
    for i in range(len(api)):
        arch = api.arch(i)
        try:
            info = api.get_more_info(i, bench_dataset, hp=hp, is_random=False)
        except UsageError:  # a refused or damaged file
            raise
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


# The genuine files hold only dicts, lists, sets, numbers, strings and numpy scalars (the packages
# pickle their records' state_dict(), not the record objects), so these are all a reader needs.
_NB201_GLOBALS = ("numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar", "numpy.dtype",
                  "numpy.dtypes.Float64DType", "numpy.dtypes.Float32DType",
                  "numpy.dtypes.Int64DType", "numpy.dtypes.Int32DType", "builtins.set")


def _nb201_load(path, map_location=None, **_):
    """torch.load with weights_only, allowing the numpy scalars NAS-Bench-201 files hold; any
    other global is refused, before it is imported, naming the file and the global."""
    import torch
    from torch import serialization

    try:
        unsafe = serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception as e:  # not a torch zip file (or a damaged one)
        raise UsageError(f"could not read {path} with nas_201_api (is it a NAS-Bench-201 .pth "
                         "file?): "
                         f"{type(e).__name__}: {e}") from None
    refused = [g for g in unsafe if g not in _NB201_GLOBALS]
    if refused:
        raise UsageError(f"refusing to load {refused[0]} from {path}: NAS-Bench-201 files may "
                         "hold only tensors, dicts, lists, numbers and strings")
    allowed = [x for x in map(_resolve, _NB201_GLOBALS) if x is not None]
    with serialization.safe_globals(allowed), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.load(path, map_location="cpu", weights_only=True)


def _resolve(name: str):
    mod, _, attr = name.rpartition(".")
    try:  # only names from _NB201_GLOBALS; numpy 1 lacks some, numpy 2 warns on numpy.core
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return getattr(importlib.import_module(mod), attr)
    except (ImportError, AttributeError):
        return None


def _nats_load(file_path, ext=".pbz2"):
    """nats_bench's pickle_load through the restricted unpickler of efsnas.data.safe_pickle."""
    import bz2

    from efsnas.data.safe_pickle import load_stream

    path = str(file_path) if os.path.isfile(str(file_path)) else str(file_path) + ext
    try:
        with bz2.BZ2File(path, "rb") as f:
            return load_stream(f, where=path, kind="NATS-Bench file")
    except OSError as e:  # bz2 raises OSError on damaged data
        raise UsageError(f"could not read {path} with nats_bench (is it a NATS-Bench topology "
                         "file?): "
                         f"{e.strerror or e}") from None


@contextlib.contextmanager
def _safe_loading(pkg: str):
    """Swap the package's own loader (torch.load / pickle.load, which run whatever a file names)
    for a restricted one while its API object reads the file."""
    mod = _import(pkg, Path(pkg))
    if pkg == "nas_201_api":
        import torch

        class _Torch:  # the module's `torch` with only `load` replaced
            def __getattr__(self, name):
                return _nb201_load if name == "load" else getattr(torch, name)

        # both call torch.load through their module's `torch`
        swaps = [(importlib.import_module(f"{pkg}.{m}"), "torch", _Torch())
                 for m in ("api_201", "api_utils")]
    else:  # the archive's loader, and the per-architecture one of a folder
        swaps = [(importlib.import_module(f"{pkg}.{m}"), "pickle_load", _nats_load)
                 for m in ("api_topology", "api_utils")]
    del mod
    olds = [(where, attr, getattr(where, attr)) for where, attr, _ in swaps]
    for where, attr, new in swaps:
        setattr(where, attr, new)
    try:
        yield
    finally:
        for where, attr, old in olds:
            setattr(where, attr, old)


def _open(p: Path):
    """The package's API object for an official file."""
    pkg = _package_for(p)
    mod = _import(pkg, p)
    try:
        if pkg == "nas_201_api":
            return mod.NASBench201API(str(p), verbose=False)
        # a folder is read one architecture at a time (fast mode), the single archive at once
        return mod.create(str(p), "tss", fast_mode=p.is_dir(), verbose=False)
    except UsageError:
        raise
    except Exception as e:  # bare assertions, pickle and bz2 errors
        kind = "NAS-Bench-201 .pth" if pkg == "nas_201_api" else "NATS-Bench topology"
        raise UsageError(f"could not read {p} with {pkg} (is it a {kind} file?): "
                         f"{type(e).__name__}: {e}") from None
