"""Load dataset pickles (CIFAR, ImageNet16) without letting them run code.

A pickle can call any importable function while it loads, so an untrusted file named
`data_batch_1` could run `os.system`. The dataset pickles we read only hold numpy arrays, lists,
dicts, numbers and strings; the unpickler below resolves exactly the globals those need and
refuses everything else before it is imported or called.
"""

from __future__ import annotations

import codecs
import io
import os
import pickle
from typing import IO, Any

import numpy as np

from efsnas.errors import DataError

__all__ = ["safe_load", "loads", "get_key"]


def _numpy_core():
    # numpy 2 renamed numpy.core to numpy._core (the old name warns); old pickles name either
    try:
        from numpy import _core as core
    except ImportError:  # numpy < 2
        from numpy import core
    return core


def _allowed() -> dict[tuple[str, str], Any]:
    core = _numpy_core()
    table: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        # Python 3 writes bytes in protocol 2 as _codecs.encode(str, "latin1"): arrays' raw data
        ("_codecs", "encode"): codecs.encode,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "bytearray"): bytearray,
        ("builtins", "complex"): complex,
        ("__builtin__", "set"): set,  # Python 2 pickles
        ("__builtin__", "frozenset"): frozenset,
        ("__builtin__", "bytearray"): bytearray,
        ("__builtin__", "complex"): complex,
    }
    for mod in ("numpy.core", "numpy._core"):
        table[(f"{mod}.multiarray", "_reconstruct")] = core.multiarray._reconstruct
        table[(f"{mod}.multiarray", "scalar")] = core.multiarray.scalar
        # protocol 5 pickles rebuild arrays from a buffer
        table[(f"{mod}.numeric", "_frombuffer")] = core.numeric._frombuffer
    return table


class _ArrayUnpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes], *, where: str, kind: str = "dataset pickle") -> None:
        super().__init__(file, encoding="latin1")  # Python 2 str (CIFAR's arrays) -> str
        self.where = where
        self.kind = kind
        self.table = _allowed()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.table[(module, name)]
        except KeyError:
            raise DataError(
                f"refusing to load {module}.{name} from {self.where}: {self.kind}s may hold "
                "only arrays, lists, dicts, numbers and strings"
            ) from None


def safe_load(file: str | os.PathLike | IO[bytes]) -> Any:
    """Unpickle a dataset file (path or binary file object) that may hold only plain data.

    Raises DataError if the file names any other global (a function, a class) or is not a
    readable pickle."""
    if isinstance(file, (str, os.PathLike)):
        try:
            with open(file, "rb") as f:
                return _load(f, str(file))
        except OSError as e:
            raise DataError(f"cannot read {file}: {e.strerror or e}") from None
    return _load(file, str(getattr(file, "name", "<stream>")))


def _load(f: IO[bytes], where: str, kind: str = "dataset pickle") -> Any:
    try:
        return _ArrayUnpickler(f, where=where, kind=kind).load()
    except DataError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, OverflowError, UnicodeDecodeError, MemoryError) as e:
        raise DataError(f"{where} is not a readable {kind} ({type(e).__name__}: {e})"
                        ) from None


def get_key(d: Any, key: str, *, where: str) -> Any:
    """`d[key]` for a dict pickled with str keys or with bytes keys (Python 2 era files)."""
    if not isinstance(d, dict):
        raise DataError(f"{where} should hold a dict (with '{key}'), not {type(d).__name__}")
    if key in d:
        return d[key]
    if key.encode() in d:
        return d[key.encode()]
    keys = ", ".join(sorted(repr(k) for k in d)) or "none"
    raise DataError(f"{where} has no '{key}' entry (keys: {keys})")


def loads(data: bytes, *, where: str = "<bytes>") -> Any:
    """`safe_load` for bytes in memory."""
    return _load(io.BytesIO(data), where)


def load_stream(f: IO[bytes], *, where: str, kind: str) -> Any:
    """`safe_load` of an open stream (a bz2 archive), naming what `kind` of file it is."""
    return _load(f, where, kind)
