"""Atomic file writes: a reader, a resumed run or a kill at any moment sees the old file or the
new one, never half of one."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def write_atomic(path: str | os.PathLike, write: Callable[[IO], None], *, binary: bool = False
                 ) -> None:
    """Call `write(file)` on a temporary file beside `path`, fsync it, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json_atomic(path: str | os.PathLike, obj: Any, *, indent: int | None = 1) -> None:
    def dump(f: IO) -> None:
        json.dump(obj, f, indent=indent)
        f.write("\n")

    write_atomic(path, dump)


class FolderLock:
    """An exclusive lock on a run folder until `release_all()` (the CLI calls it when a command
    ends) or the process exits: two commands writing the same folder at once would interleave
    epochs and results."""

    _held: dict[str, IO] = {}

    @classmethod
    def acquire(cls, folder: str | os.PathLike) -> None:
        import fcntl

        from efsnas.errors import UsageError

        folder = Path(folder)
        key = str(folder.resolve())
        if key in cls._held:
            return  # this process holds it already
        folder.mkdir(parents=True, exist_ok=True)
        f = open(folder / ".lock", "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            who = f.read().strip() or "another process"
            f.close()
            raise UsageError(f"{folder} is in use by another efsnas command ({who}); wait for it "
                             "to finish, or use another --out") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}")
        f.flush()
        cls._held[key] = f

    @classmethod
    def release_all(cls) -> None:
        """At the end of a command (a long-lived process may run several)."""
        while cls._held:
            cls._held.popitem()[1].close()


def file_fingerprint(path: str | os.PathLike) -> str:
    """A short content hash of a file (what a cached result was computed from)."""
    import hashlib

    h = hashlib.blake2b(digest_size=8)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
