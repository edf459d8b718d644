"""MobileNet-space networks built from one set of modules, two ways.

`MobileNetNetwork` is the stand-alone network of one subnet (only its chosen MBConvs are built);
`MobileNetSupernet` holds all six MBConvs of every layer and takes the subnet to run in `forward`.
Both share module names (`layers.<i>.ops.<token>...`), so extracting a subnet is a state-dict copy.

BatchNorm keeps running statistics by default (the ImageNet recipe). Before scoring a subnet,
re-estimate them with standard torch: `m.reset_running_stats(); m.momentum = None` on every
BatchNorm, then forward training batches in train mode (efsnas.evaluate.scorer does this with
`bn="recalibrate"`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from efsnas.api.supernet import Supernet
from efsnas.layers import BatchNorm2d
from efsnas.spaces.mobilenet.encoding import (
    MBCONV_CHOICES,
    NUM_LAYERS,
    SKIP,
    TOKENS,
    ChannelPlan,
    LayerPlan,
    Subnet,
    channel_plan,
    is_valid,
)

# ---- operations table ---------------------------------------------------------------------


def _conv_bn(c_in: int, c_out: int, k: int, stride: int, groups: int, affine: bool, track: bool,
             act: bool) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, groups=groups, bias=False),
        BatchNorm2d(c_out, affine=affine, track_running_stats=track),
    ]
    if act:
        # not in place: batch norm's CPU fast path keeps its output for the backward
        layers.append(nn.ReLU6())
    return nn.Sequential(*layers)


class MBConv(nn.Module):
    """Inverted residual: [Conv1x1 expand, BN, ReLU6]; depthwise kxk, BN, ReLU6; Conv1x1, BN.

    The expand conv is absent for expansion 1. The residual add happens when `residual` is
    None and stride is 1 with matching channels, or when `residual` is True.
    """

    def __init__(self, c_in: int, c_out: int, *, kernel: int, expand: int, stride: int,
                 affine: bool = True, track: bool = True, residual: bool | None = None):
        super().__init__()
        mid = c_in * expand
        self.expand = (_conv_bn(c_in, mid, 1, 1, 1, affine, track, act=True)
                       if expand != 1 else None)
        self.depthwise = _conv_bn(mid, mid, kernel, stride, mid, affine, track, act=True)
        self.project = _conv_bn(mid, c_out, 1, 1, 1, affine, track, act=False)
        self.residual = (stride == 1 and c_in == c_out) if residual is None else residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Expand (when the block has an expansion), depthwise, project; plus the input when
        residual."""
        y = x if self.expand is None else self.expand(x)
        y = self.project(self.depthwise(y))
        return x + y if self.residual else y


# ---- searchable layer ------------------------------------------------------------------------


class ChoiceLayer(nn.Module):
    """One searchable layer holding the MBConvs of `choices` (Identity has no module)."""

    def __init__(self, plan: LayerPlan, choices: Iterable[int], affine: bool, track: bool):
        super().__init__()
        self.can_skip = plan.can_skip
        self.ops = nn.ModuleDict({
            TOKENS[c]: MBConv(plan.c_in, plan.c_out, kernel=MBCONV_CHOICES[c][0],
                              expand=MBCONV_CHOICES[c][1], stride=plan.stride, affine=affine,
                              track=track)
            for c in choices if c != SKIP
        })

    def forward(self, x: torch.Tensor, choice: int) -> torch.Tensor:
        """The layer's output with operation `choice`; the input itself for skip (ValueError where
        the layer cannot skip)."""
        if choice == SKIP:
            if not self.can_skip:
                raise ValueError("Identity is not allowed at the first layer of a stage")
            return x
        return self.ops[TOKENS[choice]](x)


class NestedChoiceLayer(nn.Module):
    """One searchable layer whose six MBConvs share their convolution weights (the
    weight-sharing of Once-for-All and Single-Path NAS): one expand, depthwise and project
    weight at the largest setting (kernel 7, expansion 6); kernel k uses the centre k x k of the
    depthwise kernel, expansion e the first e x c_in channels. Each choice keeps its own three
    BatchNorms, whose statistics differ by setting.

    With separate weights, a path drawn at random through narrow layers (the CPU-scale widths,
    4-12 channels) meets, at every stage's first layer, an MBConv whose input channels mean
    something else than the ones it was trained on, and the supernet does not learn
    (docs: the MobileNet space at CPU scale)."""

    MAX_KERNEL = max(k for k, _ in MBCONV_CHOICES)
    MAX_EXPAND = max(e for _, e in MBCONV_CHOICES)

    def __init__(self, plan: LayerPlan, affine: bool, track: bool):
        super().__init__()
        self.can_skip, self.stride = plan.can_skip, plan.stride
        self.c_in, self.c_out = plan.c_in, plan.c_out
        self.residual = plan.stride == 1 and plan.c_in == plan.c_out
        mid, k = plan.c_in * self.MAX_EXPAND, self.MAX_KERNEL
        self.expand = nn.Conv2d(plan.c_in, mid, 1, bias=False)
        self.depthwise = nn.Conv2d(mid, mid, k, padding=k // 2, groups=mid, bias=False)
        self.project = nn.Conv2d(mid, plan.c_out, 1, bias=False)
        self.bns = nn.ModuleDict({
            TOKENS[c]: nn.ModuleDict({
                "expand": BatchNorm2d(plan.c_in * e, affine=affine, track_running_stats=track),
                "depthwise": BatchNorm2d(plan.c_in * e, affine=affine,
                                            track_running_stats=track),
                "project": BatchNorm2d(plan.c_out, affine=affine, track_running_stats=track)})
            for c, (_, e) in enumerate(MBCONV_CHOICES)})

    def weights(self, choice: int) -> dict[str, torch.Tensor]:
        """The expand, depthwise and project weights of MBConv `choice` (views)."""
        k, e = MBCONV_CHOICES[choice]
        mid, lo = self.c_in * e, (self.MAX_KERNEL - k) // 2
        return {"expand": self.expand.weight[:mid],
                "depthwise": self.depthwise.weight[:mid, :, lo:lo + k, lo:lo + k],
                "project": self.project.weight[:, :mid]}

    def forward(self, x: torch.Tensor, choice: int) -> torch.Tensor:
        """The layer's output with operation `choice`, its weights cut from the shared largest ones;
        the input itself for skip (ValueError where the layer cannot skip)."""
        if choice == SKIP:
            if not self.can_skip:
                raise ValueError("Identity is not allowed at the first layer of a stage")
            return x
        w, bn = self.weights(choice), self.bns[TOKENS[choice]]
        k = MBCONV_CHOICES[choice][0]
        y = F.relu6(bn["expand"](F.conv2d(x, w["expand"])))
        y = F.conv2d(y, w["depthwise"], stride=self.stride, padding=k // 2, groups=y.shape[1])
        y = bn["project"](F.conv2d(F.relu6(bn["depthwise"](y)), w["project"]))
        return x + y if self.residual else y

    def mbconv_state(self, choice: int) -> dict[str, torch.Tensor]:
        """The state of MBConv `choice` under the stand-alone network's names (`MBConv`)."""
        w, bn = self.weights(choice), self.bns[TOKENS[choice]]
        out = {f"{part}.0.weight": w[part] for part in ("expand", "depthwise", "project")}
        for part in ("expand", "depthwise", "project"):
            out.update({f"{part}.1.{k}": v for k, v in bn[part].state_dict().items()})
        return out


def stem_and_first(plan: ChannelPlan, in_channels: int, affine: bool, track: bool,
                   stem_stride: int = 2) -> tuple[nn.Module, nn.Module]:
    """The fixed stem convolution and first block."""
    stem = _conv_bn(in_channels, plan.stem, 3, stem_stride, 1, affine, track, act=True)
    # ProxylessNAS's first block has no shortcut, whatever the widths.
    first = MBConv(plan.stem, plan.first, kernel=3, expand=1, stride=1, affine=affine,
                   track=track, residual=False)
    return stem, first


class _Body(nn.Module):
    """Stem, fixed first MBConv, 21 searchable layers, head and classifier."""

    def __init__(self, plan: ChannelPlan, *, in_channels: int, num_classes: int,
                 choices_per_layer: Sequence[Iterable[int]], affine: bool, track: bool,
                 dropout: float = 0.0, nested: bool = False, stem_stride: int = 2):
        super().__init__()
        self.stem, self.first = stem_and_first(plan, in_channels, affine, track, stem_stride)
        self.layers = nn.ModuleList(
            NestedChoiceLayer(lp, affine, track) if nested else ChoiceLayer(lp, ch, affine, track)
            for lp, ch in zip(plan.layers, choices_per_layer, strict=True)
        )
        self.head = _conv_bn(plan.layers[-1].c_out, plan.head, 1, 1, 1, affine, track, act=True)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.classifier = nn.Linear(plan.head, num_classes)

    def forward(self, x: torch.Tensor, subnet: Subnet) -> torch.Tensor:
        x = self.first(self.stem(x))
        for layer, choice in zip(self.layers, subnet, strict=True):
            x = layer(x, choice)
        x = self.head(x).mean((2, 3))  # global pool; contiguous (N, C) in either memory format
        return self.classifier(self.dropout(x))

    def active_modules(self, subnet: Subnet) -> list[nn.Module]:
        mods: list[nn.Module] = [self.stem, self.first]
        for layer, c in zip(self.layers, subnet, strict=True):
            if c == SKIP:
                continue
            if isinstance(layer, NestedChoiceLayer):  # the shared weights, the choice's BNs
                mods += [layer.expand, layer.depthwise, layer.project, layer.bns[TOKENS[c]]]
            else:
                mods.append(layer.ops[TOKENS[c]])
        return mods + [self.head, self.classifier]


def _check(subnet: Sequence[int]) -> Subnet:
    subnet = tuple(int(c) for c in subnet)
    if not is_valid(subnet) or not all(0 <= c <= SKIP for c in subnet):
        raise ValueError(f"not a valid mobilenet subnet: {subnet}")
    return subnet


def _check_size(in_channels: int, num_classes: int, width_mult: float, width_divisor: int,
                stem_stride: int = 2) -> None:
    for name, v in (("in_channels", in_channels), ("num_classes", num_classes),
                    ("width_divisor", width_divisor), ("stem_stride", stem_stride)):
        if int(v) < 1:
            raise ValueError(f"mobilenet network needs {name} >= 1, got {v}")
    if not width_mult > 0:
        raise ValueError(f"mobilenet network needs width_mult > 0, got {width_mult}")


# ---- the two builds -------------------------------------------------------------------------


class MobileNetNetwork(nn.Module):
    """Stand-alone network for one subnet; skipped layers hold no module."""

    def __init__(self, subnet: Sequence[int], *, in_channels: int = 3, num_classes: int = 1000,
                 width_mult: float = 1.0, width_divisor: int = 1, affine: bool = True,
                 track_running_stats: bool = True, dropout: float = 0.0,
                 width_division: str = "exact", stem_stride: int = 2):
        super().__init__()
        _check_size(in_channels, num_classes, width_mult, width_divisor, stem_stride)
        self.subnet = _check(subnet)
        self.plan = channel_plan(width_mult, width_divisor, division=width_division)
        self.body = _Body(self.plan, in_channels=in_channels, num_classes=num_classes,
                          choices_per_layer=[[c] for c in self.subnet], affine=affine,
                          track=track_running_stats, dropout=float(dropout),
                          stem_stride=stem_stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the network's fixed subnet for the batch `x`."""
        return self.body(x, self.subnet)


OP_WEIGHTS = ("separate", "nested")


class MobileNetSupernet(Supernet):
    """All six MBConvs of every searchable layer; `forward(x, subnet)` runs only the chosen ones.

    `op_weights`: "separate" gives each MBConv its own weights (the authors' supernets);
    "nested" shares them within a layer (`NestedChoiceLayer`)."""

    def __init__(self, *, in_channels: int = 3, num_classes: int = 1000, width_mult: float = 1.0,
                 width_divisor: int = 1, affine: bool = True, track_running_stats: bool = True,
                 width_division: str = "exact", op_weights: str = "separate",
                 stem_stride: int = 2):
        super().__init__()
        if op_weights not in OP_WEIGHTS:
            raise ValueError(f"op_weights must be one of {', '.join(OP_WEIGHTS)}, got "
                             f"{op_weights!r}")
        self.op_weights = op_weights
        _check_size(in_channels, num_classes, width_mult, width_divisor, stem_stride)
        self.config = dict(in_channels=in_channels, num_classes=num_classes,
                           width_mult=float(width_mult), width_divisor=width_divisor,
                           affine=affine, track_running_stats=track_running_stats,
                           width_division=width_division, stem_stride=stem_stride)
        self.plan = channel_plan(width_mult, width_divisor, division=width_division)
        every = [range(len(MBCONV_CHOICES))] * NUM_LAYERS
        self.body = _Body(self.plan, in_channels=in_channels, num_classes=num_classes,
                          choices_per_layer=every, affine=affine, track=track_running_stats,
                          nested=op_weights == "nested", stem_stride=stem_stride)

    def forward(self, x: torch.Tensor, subnet: Subnet) -> torch.Tensor:
        if len(subnet) != NUM_LAYERS:
            raise ValueError(f"a mobilenet subnet has {NUM_LAYERS} choices, got {len(subnet)}")
        return self.body(x, subnet)

    def extract(self, subnet: Subnet) -> MobileNetNetwork:
        net = MobileNetNetwork(subnet, **self.config)
        own = {**self.state_dict(), **nested_states("body.layers", self.body.layers, subnet)}
        net.load_state_dict({k: own[k].clone() for k in net.state_dict()}, strict=True)
        return net

    def subnet_parameters(self, subnet: Subnet) -> list[nn.Parameter]:
        return [p for m in self.body.active_modules(_check(subnet)) for p in m.parameters()]

    def describe(self) -> dict:
        return {"space": "mobilenet", "structure": "separate", **self.config,
                "op_weights": self.op_weights, "channels": self.plan.as_dict()}


def nested_states(prefix: str, layers: nn.ModuleList, subnet: Subnet) -> dict[str, torch.Tensor]:
    """The chosen MBConvs of nested `layers` under the stand-alone network's state-dict names
    (`<prefix>.<i>.ops.<token>...`); nothing for separate layers, whose names already match."""
    out = {}
    for i, (layer, c) in enumerate(zip(layers, subnet, strict=True)):
        if isinstance(layer, NestedChoiceLayer) and c != SKIP:
            out.update({f"{prefix}.{i}.ops.{TOKENS[c]}.{k}": v
                        for k, v in layer.mbconv_state(c).items()})
    return out
