"""Export a stand-alone network: TorchScript, ONNX, or its state_dict, with retrained weights.

`efsnas retrain` saves each trained network's state_dict as `RUN/retrained/<name>-seed<k>.pt`
(`retrained_path`); `efsnas export` loads it into `space.build_network(subnet)` and writes the
network in the format asked for. TorchScript and ONNX get the scriptable form of the network
(`scriptable_network`): PyTorch's own layers instead of the CPU fast paths, and the space's
unrolled module; export checks that it computes what the network computes.
"""

from __future__ import annotations

import copy
import io
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from efsnas.api.search_space import SearchSpace
from efsnas.errors import CheckpointError, EfsnasError, UsageError
from efsnas.fileio import write_atomic
from efsnas.layers import to_plain
from efsnas.train.checkpoint import save_atomic

FORMATS = ("torchscript", "onnx", "state_dict")
ATOL, RTOL = 1e-5, 1e-4  # export's own check of the exported network


# ---- where retraining keeps its weights ----------------------------------------------------


def _name(space: SearchSpace, subnet: Sequence[int]) -> str:
    # the index when the space is small enough to list, else the text form made file-name safe
    if space.enumerable:
        return str(space.index(tuple(subnet)))
    return re.sub(r"[^A-Za-z0-9._-]+", "_", space.format(tuple(subnet)))


def retrained_path(run_dir: str | os.PathLike, space: SearchSpace, subnet: Sequence[int], *,
                   seed: int) -> Path:
    """`RUN/retrained/<index or cell>-seed<seed>.pt`: the stand-alone weights `efsnas retrain`
    saves for `subnet` trained with `seed`."""
    return Path(run_dir) / "retrained" / f"{_name(space, subnet)}-seed{int(seed)}.pt"


def find_retrained(run_dir: str | os.PathLike, space: SearchSpace, subnet: Sequence[int], *,
                   seed: int | None = None) -> Path | None:
    """The retrained weights of `subnet` in the run folder (with `seed`, or the lowest seed
    there); None when there are none."""
    if seed is not None:
        path = retrained_path(run_dir, space, subnet, seed=seed)
        return path if path.is_file() else None
    stem = _name(space, subnet)
    seeds = sorted(int(m.group(1)) for p in (Path(run_dir) / "retrained").glob(f"{stem}-seed*.pt")
                   if (m := re.fullmatch(rf"{re.escape(stem)}-seed(-?\d+)\.pt", p.name)))
    return retrained_path(run_dir, space, subnet, seed=seeds[0]) if seeds else None


def save_weights(net: nn.Module, path: str | os.PathLike) -> None:
    """The network's state_dict on CPU, written atomically (loads with weights_only=True)."""
    save_atomic({k: v.detach().cpu() for k, v in net.state_dict().items()}, path)


def load_weights(net: nn.Module, path: str | os.PathLike) -> None:
    """Load a state_dict saved by `save_weights`; a file of another network is a one-line error."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(state, strict=True)
    except Exception as e:  # unreadable file, foreign pickle, keys or shapes of another network
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise CheckpointError(f"cannot load weights {path} into this network: {first[:200]}"
                              ) from None


# ---- the exportable module -----------------------------------------------------------------


def scriptable_network(space: SearchSpace, net: nn.Module) -> nn.Module:
    """A copy of the stand-alone `net` in eval mode that torch.jit.script and the ONNX exporter
    accept: PyTorch's own layers for the fast paths, and the space's scriptable module."""
    return space.scriptable(to_plain(net)).eval()


def example_input(space: SearchSpace, *, batch: int = 2) -> torch.Tensor:
    """A fixed random batch of the space's input shape."""
    try:
        shape = (batch, space.in_channels, space.input_size, space.input_size)
    except AttributeError:
        raise UsageError(f"the {space.name} space does not say its input shape; pass an example "
                         "input") from None
    return torch.randn(*shape, generator=torch.Generator().manual_seed(0))


def require_onnx() -> None:
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise UsageError("ONNX export needs the onnx package: pip install onnx") from None


def export_network(space: SearchSpace, net: nn.Module, path: str | os.PathLike, *,
                   format: str, example: torch.Tensor | None = None) -> Path:
    """Write the stand-alone `net` to `path` (atomically, on CPU) as `format`.

    torchscript: `torch.jit.script` of the scriptable form, checked to give the network's outputs
    in eval mode; onnx: that form through the ONNX exporter (batch size free), checked by
    onnx.checker; state_dict: the network's own state_dict (loads into `space.build_network`).
    """
    if format not in FORMATS:
        raise UsageError(f"unknown export format {format!r}; choose from {', '.join(FORMATS)}")
    path = Path(path)
    net = copy.deepcopy(net).cpu().eval()
    if format == "state_dict":
        save_weights(net, path)
        return path
    if format == "onnx":
        require_onnx()
    x = example_input(space) if example is None else example.cpu()
    module = scriptable_network(space, net)
    if format == "torchscript":
        with warnings.catch_warnings():
            # recent torch (2.13) marks torch.jit deprecated; TorchScript is what was asked for
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.script(module)
    _check_same(net, module, x)
    if format == "torchscript":
        write_atomic(path, lambda f: _jit_save(module, f), binary=True)
    else:
        data = _onnx_bytes(module, x)
        write_atomic(path, lambda f: f.write(data), binary=True)
    return path


def _jit_save(module: torch.jit.ScriptModule, f) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(module, f)


@torch.no_grad()
def _check_same(net: nn.Module, module: nn.Module, x: torch.Tensor) -> None:
    ref, out = net(x), module(x)
    # a little relative slack: large networks have large logits, and the same CPU kernels
    # may still sum in another order
    if not torch.allclose(out, ref, rtol=RTOL, atol=ATOL):
        diff = float((out - ref).abs().max())
        raise EfsnasError(f"the exported network differs from the original by {diff:.3g}; "
                          "this is a bug in efsnas.export")


def _onnx_bytes(module: nn.Module, x: torch.Tensor) -> bytes:
    import onnx

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter warns it is legacy
        # dynamo=False: the TorchScript-based exporter needs no onnxscript and handles these
        # static networks fully
        torch.onnx.export(module, (x,), buf, dynamo=False, input_names=["input"],
                          output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    onnx.checker.check_model(onnx.load_from_string(buf.getvalue()))
    return buf.getvalue()
