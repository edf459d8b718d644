"""Typed, validated run configuration, filled from presets, a YAML file and `--set` overrides.

Library components take plain keyword arguments; only the CLI reads this object.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from efsnas.errors import UsageError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _registered(kind: str, value: str) -> str:
    """A component name checked against the registry (the one list of what exists)."""
    from efsnas import registry

    allowed = registry.names(kind)
    if kind == "dataset":
        from efsnas.data.registry import dataset_names

        allowed = dataset_names()
    if value.lower() not in allowed:
        raise ValueError(f"unknown {kind} {value!r}; choose one of: {', '.join(allowed)}")
    return value.lower()


class SpaceConfig(_Strict):
    name: str = "nb201"
    _name = field_validator("name")(lambda v: _registered("space", v))
    C: int = Field(16, ge=1, description="base width before division by G")
    N: int = Field(5, ge=1, description="cells per stage (nb201)")
    width_mult: float = Field(1.0, gt=0, description="mobilenet width multiplier")
    input_size: int | None = Field(None, ge=4, description="default: the dataset's image size")
    options: dict[str, Any] = Field(
        default_factory=dict, description="keyword options of the space itself, checked by it "
        "(mobilenet: width_division exact|rounded, supernet_bn recalibrated|batch)")


class SplitConfig(_Strict):
    criterion: str = "nonlinearity"
    _criterion = field_validator("criterion")(lambda v: _registered("criterion", v))
    groups: str | None = Field(None, description="count grouping, e.g. '0,1/2/3'")
    width_divisor: int | None = Field(None, ge=1, description="G; default: the space's")
    structure: Literal["separate", "shared_head", "shared_trunk", "shared_prefix"] | None = Field(
        None, description="how the K supernets share weights; default: the space's "
        "(nb201 shared_prefix, the authors' code; mobilenet separate)")
    thresholds: list[int] | None = Field(
        None, description="shared_prefix: cumulative-count thresholds (default 3N, 4N: the "
        "authors' 15/20 at N=5)")
    fsnas_position: int = Field(0, ge=0)
    fsnas_transfer: bool = Field(False, description="initialise FS-NAS supernets from one-shot")
    fsnas_warmup_epochs: int = Field(
        15, ge=1, description="FS-NAS transfer: epochs of one-shot training before the split "
        "(capped at train.epochs - 1); the schedule spans all train.epochs")
    gm_warmup_epochs: list[int] = Field(default_factory=lambda: [15, 30])
    gm_groups: int = Field(2, ge=2)
    gm_samples: int = Field(4, ge=1, description="subnets per operation for each gradient")
    gm_balanced: bool = Field(False, description="only near-even cuts (the authors' 2|3 on nb201)")


class DataConfig(_Strict):
    name: str = "auto"
    _name = field_validator("name")(lambda v: _registered("dataset", v))
    root: str | None = None
    heldout: Literal["half", "per_class"] = "half"
    heldout_per_class: int | None = Field(None, ge=1)
    image_size: int | None = Field(None, ge=4)
    max_train: int | None = Field(None, ge=1)
    max_heldout: int | None = Field(None, ge=1)
    augment: bool = True


class TrainConfig(_Strict):
    epochs: int = Field(250, ge=1)
    steps_per_epoch: int | None = Field(None, ge=1, description="cap on steps per epoch")
    batch_size: int = Field(64, ge=1)
    lr: float = Field(0.025, gt=0)
    lr_batch: int | None = Field(
        None, ge=1, description="the global batch `lr` is given for; set, lr scales linearly to "
        "batch_size x processes (torchrun)")
    lr_min: float = Field(0.001, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = True
    weight_decay: float = Field(5e-4, ge=0)
    wd_weights_only: bool = False
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    grad_clip: float | None = Field(
        None, gt=0, description="clip each supernet's gradient norm (the authors' NAS-Bench-201 "
        "training has none)")
    zero_grad: Literal["set_to_none", "zeros"] = Field(
        "set_to_none", description="set_to_none: unsampled operations get no weight decay and no "
        "momentum step; zeros: they do (PyTorch < 2.0, the authors' runs)")
    sampler: str = "sbs"
    _sampler = field_validator("sampler")(lambda v: _registered("sampler", v))
    seed: int = 0
    amp: bool = True
    amp_dtype: Literal["bfloat16", "float16"] = "bfloat16"
    channels_last: Literal["auto", "on", "off"] = Field(
        "auto", description="memory format; auto: on CUDA, and on CPU where the space is "
        "measured faster (SearchSpace.channels_last_on_cpu)")
    cpu_allocator: Literal["tuned", "system"] = Field(
        "tuned", description="tuned: glibc keeps freed activation memory for reuse instead of "
        "page-faulting it back (scoring 2x faster on CPU); system: glibc's defaults")
    device: str = "auto"
    tensorboard: bool = True
    progress: bool = True


class EvalConfig(_Strict):
    batch_size: int = Field(256, ge=1)
    max_images: int | None = Field(None, ge=1, description="held-out images used for scoring")
    bn: Literal["batch", "recalibrate"] = "batch"
    recal_batches: int = Field(200, ge=1)


class SearchConfig(_Strict):
    strategy: str = "evolution"
    _strategy = field_validator("strategy")(lambda v: _registered("searcher", v))
    population: int = Field(50, ge=2)
    generations: int = Field(20, ge=1)
    topk: int = Field(10, ge=1)
    mutations: int = Field(25, ge=0)
    crossovers: int = Field(25, ge=0)
    mutate_prob: float = Field(0.1, gt=0, le=1)
    budget: int = Field(1000, ge=1, description="random search: subnets evaluated")
    max_flops: float | None = Field(None, gt=0, description="MFLOPs limit")
    max_params: float | None = Field(None, gt=0, description="M parameters limit")
    seed: int = 0
    top: int = Field(10, ge=1, description="cells written to the result")


class RetrainConfig(_Strict):
    """Stand-alone training of one subnet (retraining the found cell, building ground truth)."""

    epochs: int = Field(200, ge=1)
    batch_size: int = Field(256, ge=1)
    lr: float = Field(0.1, gt=0)
    lr_batch: int | None = Field(
        None, ge=1, description="the global batch `lr` is given for; set, lr scales linearly to "
        "batch_size x processes (torchrun)")
    lr_min: float = Field(0.0, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = True
    weight_decay: float = Field(5e-4, ge=0)
    wd_weights_only: bool = False
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    dropout: float = Field(0.0, ge=0, lt=1)
    grad_clip: float | None = Field(5.0, gt=0)
    max_train: int | None = Field(None, ge=1, description="training images used")


class VerifyConfig(_Strict):
    """`efsnas run` ends by retraining the found subnet beside references at the same budget:
    a few random valid subnets and the space's hand-designed one (`retrain` recipe, with the
    epochs and training images given here)."""

    enabled: bool = True
    random_subnets: int = Field(3, ge=0, description="random valid subnets retrained beside it")
    reference: bool = Field(True, description="also retrain the space's hand-designed subnet")
    seeds: int = Field(1, ge=1, description="trainings per subnet")
    epochs: int | None = Field(None, ge=1, description="default: retrain.epochs")
    max_train: int | None = Field(None, ge=1, description="default: retrain.max_train")


def scaled_lr(lr: float, lr_batch: int | None, batch_size: int, world_size: int) -> float:
    """The linear scaling rule: `lr` was set for a global batch of `lr_batch` images."""
    return lr if lr_batch is None else lr * batch_size * world_size / lr_batch


class RunConfig(_Strict):
    space: SpaceConfig = SpaceConfig()
    split: SplitConfig = SplitConfig()
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    search: SearchConfig = SearchConfig()
    retrain: RetrainConfig = RetrainConfig()
    verify: VerifyConfig = VerifyConfig()
    out: str = "runs/default"

    @model_validator(mode="after")
    def _check(self) -> RunConfig:
        if self.train.lr_min > self.train.lr:
            raise ValueError("train.lr_min must not exceed train.lr")
        if self.split.structure == "shared_prefix" and self.split.criterion != "nonlinearity":
            raise ValueError("split.structure shared_prefix routes by the nonlinearity count: it "
                             "needs split.criterion nonlinearity")
        return self

    def training_identity(self) -> dict:
        """What a checkpoint must match to be resumed (not the search or output settings)."""
        d = self.model_dump()
        for key in ("search", "eval", "retrain", "verify", "out"):
            d.pop(key)
        for key in ("epochs", "device", "cpu_allocator", "tensorboard", "progress"):
            d["train"].pop(key)
        # settings of the criteria this run does not use
        for key in list(d["split"]):
            if (key.startswith("fsnas_") and self.split.criterion != "fsnas"
                    or key.startswith("gm_") and self.split.criterion != "gmnas"):
                d["split"].pop(key)
        return d


def list_presets() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("efsnas.presets").iterdir()
                  if p.name.endswith(".yaml"))


class _Yaml12Loader(yaml.SafeLoader):
    """YAML with the 1.2 booleans only (true/false): `off`, `on`, `yes`, `no` stay strings, so
    `channels_last: off` means the option "off" rather than False."""


_Yaml12Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"))


def load_yaml(text: str):
    return yaml.load(text, Loader=_Yaml12Loader)  # noqa: S506 (a SafeLoader subclass)


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except UnicodeDecodeError:
        raise UsageError(f"config file {path} is not UTF-8 text (a binary file?)") from None


def _read_yaml(text: str, where: str) -> dict:
    try:
        data = load_yaml(text) or {}
    except yaml.YAMLError as e:
        raise UsageError(f"{where} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{where} must hold a mapping of sections (space, split, data, ...)")
    return data


def merge_dicts(base: dict, new: dict) -> dict:
    out = dict(base)
    for k, v in new.items():
        out[k] = merge_dicts(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_override(item: str) -> dict:
    """'train.epochs=3' -> {'train': {'epochs': 3}} (value parsed as YAML)."""
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise UsageError(f"bad override {item!r}: write SECTION.KEY=VALUE, e.g. train.epochs=3")
    try:
        parsed = load_yaml(value) if value else None
    except yaml.YAMLError as e:
        raise UsageError(f"bad override {item!r}: the value is not valid YAML "
                         f"({str(e).splitlines()[0]})") from None
    out: dict[str, Any] = {}
    cur = out
    parts = key.strip().split(".")
    for p in parts[:-1]:
        cur = cur.setdefault(p, {})
    cur[parts[-1]] = parsed
    return out


def _preset(name: str, depth: int = 0) -> dict:
    """A preset's settings; `base: OTHER` in a preset starts from another preset."""
    if name not in list_presets():
        raise UsageError(f"unknown preset {name!r}; choose one of: {', '.join(list_presets())}")
    text = resources.files("efsnas.presets").joinpath(f"{name}.yaml").read_text()
    data = _read_yaml(text, f"preset {name}")
    base = data.pop("base", None)
    if base and depth < 4:
        data = merge_dicts(_preset(base, depth + 1), data)
    return data


def load_config(*, preset: str | None = None, path: str | None = None,
                overrides: list[str] | None = None) -> RunConfig:
    """Preset, then YAML file, then overrides; validated once at the end."""
    data: dict = _preset(preset) if preset else {}
    if path:
        p = Path(path)
        if not p.is_file():
            raise UsageError(f"config file {p} does not exist")
        data = merge_dicts(data, _read_yaml(_text(p), f"config file {p}"))
    for item in overrides or []:
        data = merge_dicts(data, parse_override(item))
    return validate_config(data)


def load_run_config(run_dir: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """The resolved config a run folder holds, with `--set` style overrides applied."""
    cfg_path = Path(run_dir) / "config.yaml"
    if not cfg_path.is_file():
        raise UsageError(f"{run_dir} is not a run folder (no config.yaml); train one with "
                         "`efsnas train --out DIR` or `efsnas run`")
    data = _read_yaml(_text(cfg_path), f"config file {cfg_path}")
    for item in overrides or []:
        data = merge_dicts(data, parse_override(item))
    return validate_config(data)


def validate_config(data: dict) -> RunConfig:
    try:
        return RunConfig.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        err["msg"] = err["msg"].removeprefix("Value error, ")
        loc = ".".join(str(x) for x in err["loc"]) or "config"
        more = f" (and {len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
        raise UsageError(f"invalid config: {loc}: {err['msg']}{more}") from None


def dump_config(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(), sort_keys=False)
