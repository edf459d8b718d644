"""Helpers shared by subcommands: building a space and a split from flags, JSON output."""

from __future__ import annotations

import argparse
import inspect
import json
import os
import re
from pathlib import Path
from typing import Any

from efsnas.data.registry import dataset_names
from efsnas.errors import UsageError
from efsnas.fileio import write_json_atomic  # noqa: F401  (re-exported for commands)
from efsnas.registry import lookup, names


def add_space_args(p: argparse.ArgumentParser) -> None:
    """Add the search space options (--C, --N, --in-channels, --num-classes, --input-size, --option)
    to a parser."""
    g = p.add_argument_group("search space")
    g.add_argument("--C", type=int, default=None, help="base width (nb201: 16)")
    g.add_argument("--N", type=int, default=None, help="cells per stage (nb201: 5)")
    g.add_argument("--in-channels", type=int, default=None, help="input channels (1 = grayscale)")
    g.add_argument("--num-classes", type=int, default=None, help="classes of the classifier")
    g.add_argument("--input-size", type=int, default=None, help="image side in pixels")
    g.add_argument("--option", metavar="KEY=VALUE", action="append", default=[],
                   help="any option the space declares, e.g. --option width_mult=0.5 "
                        "(repeatable; --C and --N are NAS-Bench-201's)")


def space_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The space keyword arguments the command line gives (--option values parsed as YAML); raises
    UsageError for a malformed --option."""
    from efsnas.app.config import load_yaml

    keys = {"C": "C", "N": "N", "in_channels": "in_channels", "num_classes": "num_classes",
            "input_size": "input_size"}
    out = {k: getattr(args, a) for k, a in keys.items() if getattr(args, a, None) is not None}
    for item in getattr(args, "option", []):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"bad --option {item!r}: write KEY=VALUE, e.g. width_mult=0.5")
        try:
            out[key.strip()] = load_yaml(value)
        except Exception as e:  # yaml.YAMLError: unclosed, a bad tag, nested too deep
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise UsageError(f"bad --option {item!r}: the value is not valid YAML ({first})"
                             ) from None
    return out


def criterion_options(name: str, groups: str | None) -> dict[str, Any]:
    """`--groups` for criteria whose constructor takes a grouping; an error for the others."""
    if not groups:
        return {}
    if "groups" not in inspect.signature(lookup("criterion", name)).parameters:
        raise UsageError(f"--groups does not apply to the {name} criterion (it takes no "
                         "grouping of counts)")
    return {"groups": groups}


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    """The parsed JSON file at `path`; raises UsageError, naming it as `what`, when it is missing or
    not valid JSON."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{what} {path} does not exist")
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise UsageError(f"{what} {path} is not valid JSON (line {e.lineno}: {e.msg})") from None
    except UnicodeDecodeError:
        raise UsageError(f"{what} {path} is not UTF-8 text (a binary file?)") from None
    except RecursionError:  # nested thousands deep
        raise UsageError(f"{what} {path} is nested too deep to read") from None


def refuse_overwrite(path: str | os.PathLike, *, force: bool, flag: str = "--out") -> None:
    """An existing file is replaced only with --force."""
    if Path(path).exists() and not force:
        raise UsageError(f"{path} exists; choose another {flag}, or add --force to overwrite it")


# ---- ground truth ---------------------------------------------------------------------------

def add_ground_truth_args(p: argparse.ArgumentParser, *, purpose: str = "",
                          positional: bool = False) -> None:
    """The ground-truth file (`--ground-truth FILE`, or the positional GROUND_TRUTH) and the
    --dataset / --metric that choose which accuracy of an official benchmark file it gives."""
    from efsnas.evaluate.benchmark_files import DATASETS, METRICS

    g = p.add_argument_group("ground truth")
    what = ("JSON mapping cell -> accuracy, or an official NAS-Bench-201 .pth / NATS-Bench "
            "topology file or folder (pip install \"efsnas[benchmarks]\")")
    what += f": {purpose}" if purpose else ""
    if positional:
        g.add_argument("ground_truth", metavar="GROUND_TRUTH", help=what)
    else:
        g.add_argument("--ground-truth", metavar="FILE", help=what)
    g.add_argument("--dataset", choices=list(DATASETS),
                   help="the benchmark dataset whose accuracies an official ground-truth "
                        "file gives (default cifar10); it selects a column, it trains nothing")
    g.add_argument("--metric", choices=METRICS,
                   help="test or valid accuracy of an official ground-truth file (default "
                        "test; cifar10 valid is the model trained on the train split only)")


def ground_truth_from_args(args: argparse.Namespace, *, missing_ok: bool = False
                           ) -> dict[str, float] | None:
    """Cell -> accuracy from the ground-truth argument, or None when none is given (or, with
    `missing_ok`, when its file does not exist yet). --dataset / --metric without a ground
    truth are an error rather than ignored."""
    from efsnas.evaluate.ranking import load_ground_truth

    if not args.ground_truth:
        if args.dataset or args.metric:
            raise UsageError("--dataset/--metric choose an accuracy of the ground-truth file; "
                             "give --ground-truth FILE too")
        return None
    if missing_ok and not Path(args.ground_truth).exists():
        return None
    return load_ground_truth(args.ground_truth, dataset=args.dataset, metric=args.metric)


# ---- run configuration from flags ------------------------------------------------------------

SHORTCUTS = {  # flag -> config key, for the settings people change most
    "epochs": "train.epochs", "device": "train.device", "seed": "train.seed",
    "data": "data.name", "data_root": "data.root", "sampler": "train.sampler",
    "criterion": "split.criterion",
}


def add_config_args(p: argparse.ArgumentParser, *, default_preset: str = "default",
                    without: tuple[str, ...] = ()) -> None:
    """The configuration flags; `without` leaves out shortcut flags a command has its own form
    of (compare's --criteria)."""
    g = p.add_argument_group("configuration (preset < --config file < flags < --set)")
    g.add_argument("--preset", default=default_preset,
                   help=f"built-in preset: default, tiny, benchmark, imagenet... "
                        f"(default {default_preset})")
    g.add_argument("--config", metavar="FILE", help="YAML file with sections space, split, data, "
                                                    "train, eval, search")
    g.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                   help="override one setting, e.g. --set train.epochs=3 (repeatable)")
    g.add_argument("--out", metavar="DIR", help="run folder (config, checkpoints, results)")
    g.add_argument("--force", action="store_true",
                   help="overwrite a run folder that holds another configuration")
    g.add_argument("--epochs", type=int, help="training epochs (train.epochs)")
    g.add_argument("--device", help="cpu, cuda, cuda:1 or auto (train.device)")
    g.add_argument("--seed", type=int, help="seed of training, data split and sampling")
    g.add_argument("--data", help="dataset (data.name): " + ", ".join(dataset_names()))
    g.add_argument("--data-root", help="folder holding the dataset files (data.root)")
    g.add_argument("--sampler", choices=names("sampler"), help="train.sampler")
    if "criterion" not in without:
        g.add_argument("--criterion", choices=names("criterion"), help="split.criterion")


def config_from_args(args: argparse.Namespace):
    """The run config the command line describes: --preset, then --config, then the shortcut options
    and --set overrides."""
    from efsnas.app.config import load_config

    return load_config(preset=args.preset, path=args.config,
                       overrides=shortcut_overrides(args) + args.set)


def shortcut_overrides(args: argparse.Namespace, shortcuts: dict[str, str] | None = None
                       ) -> list[str]:
    """`--set` style overrides for the shortcut flags given (and --out)."""
    overrides = []
    for flag, key in (shortcuts or SHORTCUTS).items():
        v = getattr(args, flag, None)
        if v is not None:
            overrides.append(f"{key}={v}")
    if getattr(args, "out", None):
        overrides.append(f"out={args.out}")
    return overrides


def parse_shard(text: str) -> tuple[int, int]:
    """`--shard I/N` -> (I, N), 0 <= I < N: this process's share of independent work."""
    m = re.fullmatch(r"(\d{1,6})/(\d{1,6})", text.strip())
    if not m or not 0 <= int(m[1]) < int(m[2]):
        raise argparse.ArgumentTypeError(f"{text!r}: write I/N with 0 <= I < N, e.g. 0/2")
    return int(m[1]), int(m[2])


def add_parallel_args(p: argparse.ArgumentParser, *, cluster: bool = False) -> None:
    """`--workers N` (independent trainings side by side), and for commands that can send
    them to a cluster, `--executor`, `--partition`, `--timeout-min`, `--gpus`."""
    g = p.add_argument_group("parallel work (results are the same as one worker's)")
    g.add_argument("--workers", type=int, default=None, metavar="N",
                   help="processes training side by side, each single-threaded (default: one "
                        "per core on CPU, one per GPU on CUDA; 1: everything in this process)")
    if not cluster:
        return
    g.add_argument("--executor", choices=("local", "slurm", "submitit-local"), default="local",
                   help="local: a process pool on this machine; slurm: one SLURM job per "
                        "training through submitit (pip install \"efsnas[cluster]\"), results "
                        "gathered into the same files; submitit-local: the same jobs as local "
                        "processes (a cluster run without a cluster)")
    g.add_argument("--partition", help="SLURM partition (--executor slurm)")
    g.add_argument("--timeout-min", type=int, default=240,
                   help="time limit of one cluster job in minutes (default 240); a job that "
                        "runs out resumes from its checkpoint when the command is rerun")
    g.add_argument("--gpus", type=int, default=0, help="GPUs per cluster job (default 0)")
