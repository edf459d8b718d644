"""Typed, validated run configuration, filled from presets, a YAML file and `--set` overrides.

Library components take plain keyword arguments; only the CLI reads this object.
"""

from __future__ import annotations

import inspect
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

# The components a config names when it names none: the method's own, declared once here (the
# schema below, the CLI's defaults and the presets' fallbacks read this table).
DEFAULT_COMPONENTS = {"space": "nb201", "criterion": "nonlinearity", "sampler": "sbs",
                      "searcher": "evolution"}


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


# Fields the space section had before each space declared its own (older config.yaml files),
# with the values such a file holds for a space that does not use them.
_LEGACY_SPACE_FIELDS = {"C": 16, "N": 5, "width_mult": 1.0}
_FROM_DATA = ("in_channels", "num_classes", "input_size")  # set from the data, not options


def space_options(name: str) -> dict[str, inspect.Parameter]:
    """The keyword options a registered space declares (its factory's keyword arguments,
    less those the data sets)."""
    from efsnas import registry

    factory = registry.lookup("space", name)
    params = inspect.signature(factory).parameters
    return {k: p for k, p in params.items()
            if k not in _FROM_DATA and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


class SpaceConfig(BaseModel):
    """`name`, the input size, and the space's own options. Each space declares its options
    (NAS-Bench-201: C, N; MobileNet: width_mult, width_division, supernet_bn): they may be
    written in `options` or directly in the section (`space: {name: nb201, C: 8, N: 1}`), and
    are kept in `options`."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)
    name: str = DEFAULT_COMPONENTS["space"]
    _name = field_validator("name")(lambda v: _registered("space", v))
    input_size: int | None = Field(None, ge=4, description="default: the dataset's image size")
    options: dict[str, Any] = Field(
        default_factory=dict, description="keyword options of the space itself, checked by it "
        "(nb201: C, N; mobilenet: width_mult, width_division exact|rounded, supernet_bn "
        "recalibrated|batch)")

    @model_validator(mode="after")
    def _own_options(self) -> SpaceConfig:
        extra = dict(self.__pydantic_extra__ or {})
        self.__pydantic_extra__.clear()
        declared = space_options(self.name)
        options = dict(self.options)
        for key, value in extra.items():
            if key in declared:
                options.setdefault(key, value)
            elif not (key in _LEGACY_SPACE_FIELDS and value == _LEGACY_SPACE_FIELDS[key]):
                raise ValueError(f"the {self.name} space has no option {key!r}; its options: "
                                 f"{', '.join(declared)}")
        unknown = sorted(set(options) - set(declared))
        if unknown:
            raise ValueError(f"the {self.name} space has no option {unknown[0]!r}; its "
                             f"options: {', '.join(declared)}")
        for key, value in options.items():  # the declared type, where the space annotates one
            kind = declared[key].annotation
            if kind in (int, "int") and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"option {key} of the {self.name} space must be an integer, "
                                 f"got {value!r}")
            if kind in (float, "float") and (isinstance(value, bool)
                                             or not isinstance(value, (int, float))):
                raise ValueError(f"option {key} of the {self.name} space must be a number, "
                                 f"got {value!r}")
        object.__setattr__(self, "options", options)
        return self

    def identity(self) -> dict:
        """The section as run identities record it: the layout of older config files (their
        checkpoints still resume), the space's options beside it."""
        options = dict(self.options)
        legacy = {k: options.pop(k, v) for k, v in _LEGACY_SPACE_FIELDS.items()}
        return {"name": self.name, **legacy, "input_size": self.input_size, "options": options}


class SplitConfig(_Strict):
    """The `split` section: the splitting criterion, how its supernets share weights, and each
    criterion's own settings (`fsnas_*`, `gm_*`)."""

    criterion: str = DEFAULT_COMPONENTS["criterion"]
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
    """The `data` section: the dataset, its folder, how the held-out images are set apart, and caps
    on the image counts."""

    name: str = "auto"
    _name = field_validator("name")(lambda v: _registered("dataset", v))
    root: str | None = None
    heldout: Literal["half", "per_class"] = "half"
    heldout_per_class: int | None = Field(None, ge=1)
    image_size: int | None = Field(None, ge=4)
    max_train: int | None = Field(None, ge=1)
    max_heldout: int | None = Field(None, ge=1)
    augment: bool = True


class _SGDConfig(_Strict):
    """The optimiser settings supernet training and stand-alone retraining share."""

    lr_batch: int | None = Field(
        None, ge=1, description="the global batch `lr` is given for; set, lr scales linearly to "
        "batch_size x processes (torchrun)")
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = True
    weight_decay: float = Field(5e-4, ge=0)
    wd_weights_only: bool = False
    label_smoothing: float = Field(0.0, ge=0, lt=1)


class TrainConfig(_SGDConfig):
    """The `train` section: supernet training (schedule, optimiser, subnet sampler, seed, precision,
    memory format, device)."""

    epochs: int = Field(250, ge=1)
    steps_per_epoch: int | None = Field(None, ge=1, description="cap on steps per epoch")
    batch_size: int = Field(64, ge=1)
    lr: float = Field(0.025, gt=0)
    lr_min: float = Field(0.001, ge=0)
    grad_clip: float | None = Field(
        None, gt=0, description="clip each supernet's gradient norm (the authors' NAS-Bench-201 "
        "training has none)")
    zero_grad: Literal["set_to_none", "zeros"] = Field(
        "set_to_none", description="set_to_none: unsampled operations get no weight decay and no "
        "momentum step; zeros: they do (PyTorch < 2.0, the authors' runs)")
    sampler: str = DEFAULT_COMPONENTS["sampler"]
    _sampler = field_validator("sampler")(lambda v: _registered("sampler", v))
    seed: int = Field(0, ge=0, lt=2 ** 63, description="torch takes seeds below 2**63")
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
    """The `eval` section: how subnets are scored on the held-out images (batch size, image cap,
    batch norm statistics)."""

    batch_size: int = Field(256, ge=1)
    max_images: int | None = Field(None, ge=1, description="held-out images used for scoring")
    bn: Literal["batch", "recalibrate"] = "batch"
    recal_batches: int = Field(200, ge=1)


class SearchConfig(_Strict):
    """The `search` section: the search strategy, its budget and settings, the FLOPs and parameter
    limits, and how many cells the result keeps."""

    strategy: str = DEFAULT_COMPONENTS["searcher"]
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


class RetrainConfig(_SGDConfig):
    """Stand-alone training of one subnet (retraining the found cell, building ground truth)."""

    epochs: int = Field(200, ge=1)
    batch_size: int = Field(256, ge=1)
    lr: float = Field(0.1, gt=0)
    lr_min: float = Field(0.0, ge=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    grad_clip: float | None = Field(5.0, gt=0)
    max_train: int | None = Field(None, ge=1, description="training images used")
    precise_bn: int | None = Field(
        None, ge=1, description="training batches (no augmentation) that re-estimate the "
        "BatchNorm running statistics before testing; default: as trained")


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


class FinalistsConfig(_Strict):
    """`efsnas run` (and each `compare` run) re-ranks the search's `k` best candidates by
    stand-alone training: each one trained with a short version of the `retrain` recipe on
    the training images (never the held-out or test ones) and tested on the held-out images;
    the answer is the one with the best held-out accuracy. k < 2: the supernets' top-1."""

    k: int = Field(3, ge=0, description="finalists retrained (0 or 1: no re-ranking)")
    epochs: int | None = Field(None, ge=1, description="default: a quarter of retrain.epochs")
    max_train: int | None = Field(None, ge=1, description="default: retrain.max_train")

    @property
    def enabled(self) -> bool:
        """Whether the finalists are re-ranked at all (k of 2 or more)."""
        return self.k > 1


def scaled_lr(lr: float, lr_batch: int | None, batch_size: int, world_size: int) -> float:
    """The linear scaling rule: `lr` was set for a global batch of `lr_batch` images."""
    return lr if lr_batch is None else lr * batch_size * world_size / lr_batch


class RunConfig(_Strict):
    """A whole run's configuration, one field per section (space, split, data, train, eval, search,
    retrain, verify, finalists) plus the output folder `out`."""

    space: SpaceConfig = SpaceConfig()
    split: SplitConfig = SplitConfig()
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    search: SearchConfig = SearchConfig()
    retrain: RetrainConfig = RetrainConfig()
    verify: VerifyConfig = VerifyConfig()
    finalists: FinalistsConfig = FinalistsConfig()
    out: str = "runs/default"

    @model_validator(mode="after")
    def _check(self) -> RunConfig:
        if self.train.lr_min > self.train.lr:
            raise ValueError("train.lr_min must not exceed train.lr")
        from efsnas import registry

        criterion = registry.lookup("criterion", self.split.criterion)
        if self.split.structure and self.split.structure not in criterion.structures:
            raise ValueError(f"split.structure {self.split.structure} does not fit the "
                             f"{self.split.criterion} criterion; it takes: "
                             f"{', '.join(criterion.structures)}")
        return self

    def training_identity(self) -> dict:
        """What a checkpoint must match to be resumed (not the search or output settings)."""
        from efsnas import registry

        d = self.model_dump()
        for key in ("search", "eval", "retrain", "verify", "finalists", "out"):
            d.pop(key)
        for key in ("epochs", "device", "cpu_allocator", "tensorboard", "progress"):
            d["train"].pop(key)
        d["space"] = self.space.identity()
        # settings of the criteria this run does not use
        mine = set(registry.lookup("criterion", self.split.criterion).config_fields)
        for name in registry.names("criterion"):
            for key in registry.lookup("criterion", name).config_fields:
                if key not in mine:
                    d["split"].pop(key, None)
        return d


def list_presets() -> list[str]:
    """Names of the bundled presets (the YAML files of `efsnas.presets`), sorted."""
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
    """Parsed YAML 1.2 text; any error of the loader (a bad date, huge numbers, deep nesting) is
    raised as a yaml.YAMLError."""
    try:
        return yaml.load(text, Loader=_Yaml12Loader)  # noqa: S506 (a SafeLoader subclass)
    except (ValueError, TypeError, OverflowError, RecursionError, AttributeError, KeyError,
            IndexError) as e:
        # a date that is no date (2020-13-45), '!!float x', 5000 digits, nesting thousands deep
        first = str(e).splitlines()[0] if str(e) else "cannot be read"
        raise yaml.YAMLError(f"{type(e).__name__}: {first}") from None


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
    """`new` on top of `base`, nested mappings merged key by key (the inputs are left unchanged)."""
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
        data = merge_layer(data, _read_yaml(_text(p), f"config file {p}"))
    flags: dict = {}
    for item in overrides or []:
        flags = merge_dicts(flags, parse_override(item))
    return validate_config(merge_layer(data, flags))


def merge_layer(base: dict, layer: dict) -> dict:
    """`layer` on top of `base`. A layer naming another space starts the space section afresh:
    the options below it belong to the other space (a preset's C and N are not MobileNet's)."""
    new_space = layer.get("space")
    old_space = base.get("space")
    if (isinstance(new_space, dict) and isinstance(old_space, dict) and "name" in new_space
            and str(new_space["name"]).lower() != str(old_space.get("name", DEFAULT_COMPONENTS["space"])).lower()):
        base = {**base, "space": {k: v for k, v in old_space.items() if k == "input_size"}}
    return merge_dicts(base, layer)


def load_run_config(run_dir: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """The resolved config a run folder holds, with `--set` style overrides applied."""
    cfg_path = Path(run_dir) / "config.yaml"
    if not cfg_path.is_file():
        raise UsageError(f"{run_dir} is not a run folder (no config.yaml); train one with "
                         "`efsnas train --out DIR` or `efsnas run`")
    data = _read_yaml(_text(cfg_path), f"config file {cfg_path}")
    if not data:  # a run writes its whole resolved config: an empty one is damaged
        raise UsageError(f"{cfg_path} holds no settings (the file is damaged); restore it, or "
                         "train the run again with --force")
    for item in overrides or []:
        data = merge_dicts(data, parse_override(item))
    return validate_config(data)


def validate_config(data: dict) -> RunConfig:
    """The RunConfig that `data` describes; raises UsageError naming the first invalid field."""
    try:
        return RunConfig.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        err["msg"] = err["msg"].removeprefix("Value error, ")
        loc = ".".join(str(x) if str(x).isprintable() else repr(x) for x in err["loc"]
                       ) or "config"  # a key with a newline stays on the line
        more = f" (and {len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
        raise UsageError(f"invalid config: {loc}: {err['msg']}{more}") from None


def dump_config(cfg: RunConfig) -> str:
    """The config as YAML text, sections in declaration order."""
    return yaml.safe_dump(cfg.model_dump(), sort_keys=False)
