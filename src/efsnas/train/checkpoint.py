"""Atomic checkpoints that load with weights_only=True, and the RNG states they carry."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from efsnas.errors import CheckpointError
from efsnas.fileio import write_atomic


def save_atomic(obj: Any, path: str | os.PathLike) -> None:
    """torch.save through a temporary file and a rename (never a half-written checkpoint)."""
    write_atomic(path, lambda f: torch.save(obj, f), binary=True)


def load_checkpoint(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> dict:
    """The checkpoint dict at `path` (tensors only, no foreign pickles); raises CheckpointError when
    it is missing, damaged or not an efsnas checkpoint."""
    path = Path(path)
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except Exception as e:  # truncated zip, foreign pickle, disallowed global ...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"checkpoint {path} is corrupted or not an efsnas checkpoint ({first[:160]}); "
            "delete it or rerun with --force to start over"
        ) from None
    if not isinstance(obj, dict) or obj.get("format") != "efsnas-checkpoint":
        raise CheckpointError(f"{path} is not an efsnas checkpoint; rerun with --force to replace it")
    return obj


def check_identity(state: dict, identity: dict, path: str | os.PathLike) -> None:
    """Refuse a checkpoint trained under another configuration (seed, widths, split ...)."""
    import json

    mine = json.dumps(identity, sort_keys=True)
    if state.get("identity") != mine:
        try:
            theirs = json.loads(state.get("identity") or "{}")
        except (TypeError, ValueError):  # damaged: not JSON text, 5000 digits
            raise CheckpointError(f"{path} holds a damaged run identity; use another --out "
                                  "folder, or --force to overwrite it") from None
        if same_identity(theirs, identity):
            return
        raise CheckpointError(
            f"{path} belongs to another configuration ({first_difference(theirs, identity)}); "
            "use another --out folder, or --force to overwrite it")


def same_identity(recorded, current) -> bool:
    """Whether a recorded run identity is the current one. A setting added to the configuration
    after the run was recorded is absent from it: it matches when its current value is empty
    (None or {}, the defaults such settings are added with, e.g. `retrain.lr_batch`,
    `space.options`)."""
    if isinstance(recorded, dict) and isinstance(current, dict):
        for key in set(recorded) | set(current):
            if key not in recorded:
                if current[key] not in (None, {}):
                    return False
            elif key not in current or not same_identity(recorded[key], current[key]):
                return False
        return True
    return recorded == current


def load_weights_into(module: torch.nn.Module, weights: dict, path: str | os.PathLike) -> None:
    """Load a checkpoint's `weights` into `module`; raises CheckpointError naming `path` when they
    do not fit."""
    try:
        module.load_state_dict(weights)
    except (RuntimeError, TypeError, AttributeError, KeyError) as e:  # a damaged state
        raise CheckpointError(f"{path} does not fit these supernets: "
                              f"{str(e).splitlines()[0]}") from None


def first_difference(a, b, prefix: str = "") -> str:
    """The first key (dotted, in sorted order) where the nested dicts `a` (the checkpoint's) and `b`
    (this run's) differ, with both values, for error messages."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                return first_difference(a.get(key), b.get(key), f"{prefix}{key}.")
    return f"{prefix.rstrip('.')}: checkpoint has {a!r}, this run has {b!r}"


def rng_state() -> dict:
    """Global RNG states as tensors and plain values (weights_only-loadable)."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "python": {"version": py_state[0], "state": list(py_state[1]), "gauss": py_state[2]},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore the global torch, NumPy, Python (and CUDA, when present) random states that rng_state
    saved."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
