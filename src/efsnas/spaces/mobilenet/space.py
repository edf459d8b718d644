"""The MobileNet (ProxylessNAS-style, ImageNet) search space as a plug-in.

Expected figures (method sections 2.2, 3, 7): 21 layers, 6^6 x 7^15 ~ 2.2e17 valid subnets.
Under uniform sampling the number of Identity layers among the 15 skippable ones is
Binomial(15, 1/7), so counts 42/40/38/36/34 have probability 0.099/0.248/0.289/0.209/0.104 and
counts <= 32 (the "rest" group) 0.052. Costs at 224 px and 1000 classes, full width
(multiply-accumulates of conv and linear layers; parameters with BN affine): all-k3e6
539.9 MFLOPs, 4.71 M; all-k7e6 693.5 MFLOPs, 5.14 M; all-k3e3 291.1 MFLOPs, 3.20 M; the
smallest (k3e3 at stage-first layers, skip elsewhere) 108.9 MFLOPs, 2.16 M. The paper's searched
networks: 516-544 MFLOPs, 4.8-4.9 M parameters.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from efsnas.api.search_space import EvolutionMixin, SearchSpace, Subnet
from efsnas.errors import UsageError
from efsnas.registry import register_space
from efsnas.spaces.mobilenet import encoding as E
from efsnas.spaces.mobilenet.network import OP_WEIGHTS, MobileNetNetwork, MobileNetSupernet

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from torch import nn


def _out(h: int, stride: int) -> int:
    """Output size of a conv with odd kernel k and padding k // 2."""
    return (h - 1) // stride + 1


class MobileNetSpace(EvolutionMixin, SearchSpace):
    """21 searchable MBConv-or-Identity layers in 6 stages between a fixed stem and head."""

    name = "mobilenet"
    channels_last_on_cpu = True  # 1.5-1.9x faster steps: benchmarks/memory_format.py

    SUPERNET_BNS = ("recalibrated", "batch")

    def __init__(self, *, num_classes: int = 1000, input_size: int = 224, in_channels: int = 3,
                 width_mult: float = 1.0, width_division: str = "exact",
                 supernet_bn: str = "recalibrated", op_weights: str = "separate",
                 stem_stride: int = 2) -> None:
        """`width_division`: "exact" divides every width by G as the authors' code (40/2 = 20),
        "rounded" rounds to multiples of 8 (24). `supernet_bn`: "recalibrated" gives the
        supernets affine BN with running statistics, re-estimated before scoring (the ImageNet
        recipe, METHOD section 6); "batch" has neither, batch statistics always (the authors'
        supernet code). `op_weights`: "separate" gives every MBConv of a supernet layer its own
        weights (the authors' supernets); "nested" lets the six share one kernel-7, expansion-6
        set of convolution weights, sliced (Once-for-All style), which the CPU-scale widths need
        to learn at all (network.NestedChoiceLayer). Stand-alone networks are the same either
        way. `stem_stride`: 2 as in ProxylessNAS; 1 keeps a small image's resolution for one
        more stage, so the later stages' kernel choices still see more than 1x1 or 2x2 maps."""
        for key, v in (("num_classes", num_classes), ("input_size", input_size),
                       ("in_channels", in_channels)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise UsageError(f"mobilenet space: {key} must be a positive integer, got {v!r}")
        if not isinstance(width_mult, (int, float)) or not width_mult > 0:
            raise UsageError(f"mobilenet space: width_mult must be a positive number, got "
                             f"{width_mult!r}")
        if width_division not in E.WIDTH_DIVISIONS:
            raise UsageError(f"mobilenet space: width_division must be one of "
                             f"{', '.join(E.WIDTH_DIVISIONS)}, got {width_division!r}")
        if supernet_bn not in self.SUPERNET_BNS:
            raise UsageError(f"mobilenet space: supernet_bn must be one of "
                             f"{', '.join(self.SUPERNET_BNS)}, got {supernet_bn!r}")
        self.num_classes, self.input_size, self.in_channels = num_classes, input_size, in_channels
        self.width_mult = float(width_mult)
        if op_weights not in OP_WEIGHTS:
            raise UsageError(f"mobilenet space: op_weights must be one of "
                             f"{', '.join(OP_WEIGHTS)}, got {op_weights!r}")
        if stem_stride not in (1, 2):
            raise UsageError(f"mobilenet space: stem_stride must be 1 or 2, got {stem_stride!r}")
        self.width_division, self.supernet_bn = width_division, supernet_bn
        self.op_weights, self.stem_stride = op_weights, stem_stride

    # encoding
    @property
    def choices(self) -> tuple[int, ...]:
        return (E.NUM_CHOICES,) * E.NUM_LAYERS

    def parse(self, text: str) -> Subnet:
        return E.parse_subnet(text)

    def format(self, subnet: Subnet) -> str:
        return E.format_subnet(subnet)

    def is_valid(self, subnet: Subnet) -> bool:
        return E.is_valid(subnet)

    def reference_subnet(self, *, max_flops: float | None = None) -> Subnet | None:
        """k3e6 everywhere (MobileNetV2-like, no skips); under a FLOPs limit, the uniform
        network (one MBConv setting in every layer) with the most FLOPs within it."""
        if max_flops is None:
            return self.parse("-".join(["k3e6"] * E.NUM_LAYERS))
        uniform = [(c,) * E.NUM_LAYERS for c in range(len(E.MBCONV_CHOICES))]
        within = [s for s in uniform if self.flops(s) <= max_flops]
        return max(within, key=self.flops, default=None)

    # sampling: draw valid subnets directly (uniform over valid ones, as rejection would be)
    def sample_valid(self, rng: random.Random) -> Subnet:
        """A uniformly random valid subnet, drawn directly: any choice, except skip at a stage's
        first layer."""
        return tuple(rng.randrange(E.NUM_CHOICES if i not in E.STAGE_FIRST else E.SKIP)
                     for i in range(E.NUM_LAYERS))

    def sample(self, rng: random.Random) -> Subnet:
        return self.sample_valid(rng)

    def sample_where(self, predicate: Callable[[Subnet], bool], rng: random.Random, *,
                     max_tries: int = 100_000) -> Subnet:
        for _ in range(max_tries):
            s = self.sample_valid(rng)
            if predicate(s):
                return s
        raise UsageError(
            f"no valid {self.name} subnet satisfying the constraint in {max_tries} draws: "
            "the subspace is empty or too rare; check the split"
        )

    # counting
    def nonlinearity_count(self, subnet: Subnet) -> int:
        return E.nonlinearity_count(subnet)

    @property
    def possible_counts(self) -> tuple[int, ...]:
        return E.POSSIBLE_COUNTS

    @property
    def default_groups(self) -> tuple[tuple, ...]:
        return ((34,), (36,), (38,), (40,), (42,), ("rest",))

    @property
    def default_width_divisor(self) -> int:
        return 2  # K=6 supernets at half width (the paper's setting)

    # costs: multiply-accumulates of conv and linear layers (batch 1); parameters with BN affine
    def _cost(self, subnet: Subnet, width_divisor: int, affine: bool) -> tuple[int, int]:
        subnet = self.check(subnet)
        plan = E.channel_plan(self.width_mult, self._divisor(width_divisor),
                              division=self.width_division)
        bn = 2 if affine else 0
        h = _out(self.input_size, self.stem_stride)
        macs = h * h * self.in_channels * plan.stem * 9
        params = self.in_channels * plan.stem * 9 + bn * plan.stem
        # fixed first block: depthwise 3x3 and project, stride 1
        macs += h * h * plan.stem * (9 + plan.first)
        params += plan.stem * (9 + bn + plan.first) + bn * plan.first
        for lp, c in zip(plan.layers, subnet, strict=True):
            ho = _out(h, lp.stride)
            if c != E.SKIP:
                k, e = E.MBCONV_CHOICES[c]
                mid = lp.c_in * e
                macs += h * h * lp.c_in * mid + ho * ho * mid * (k * k + lp.c_out)
                params += mid * (lp.c_in + bn + k * k + bn + lp.c_out) + bn * lp.c_out
            h = ho
        c_last = plan.layers[-1].c_out
        macs += h * h * c_last * plan.head + plan.head * self.num_classes
        params += c_last * plan.head + bn * plan.head + (plan.head + 1) * self.num_classes
        return macs, params

    def flops(self, subnet: Subnet, *, width_divisor: int = 1) -> int:
        return self._cost(subnet, width_divisor, True)[0]

    def supernet_flops(self, subnet: Subnet, *, width_divisor: int = 1) -> float:
        return self.flops(subnet, width_divisor=width_divisor)

    def params(self, subnet: Subnet, *, width_divisor: int = 1, affine: bool = True) -> int:
        return self._cost(subnet, width_divisor, affine)[1]

    # modules
    @staticmethod
    def _divisor(width_divisor: int) -> int:
        if not isinstance(width_divisor, int) or width_divisor < 1:
            raise UsageError(f"width divisor must be a positive integer, got {width_divisor!r}")
        return width_divisor

    def channels(self, *, width_divisor: int = 1) -> dict:
        """Resolved widths (stem, first block, the six stages, head) at this divisor."""
        return E.channel_plan(self.width_mult, self._divisor(width_divisor),
                              division=self.width_division).as_dict()

    def build_network(self, subnet: Subnet, *, width_divisor: int = 1, affine: bool = True,
                      track_running_stats: bool = True, dropout: float = 0.0
                      ) -> MobileNetNetwork:
        subnet = self.check(subnet)
        if not self.is_valid(subnet):
            raise UsageError(f"{self.format(subnet)} is not a valid {self.name} subnet: the first "
                             "layer of a stage cannot be skip")
        return MobileNetNetwork(subnet, in_channels=self.in_channels,
                                num_classes=self.num_classes, width_mult=self.width_mult,
                                width_divisor=self._divisor(width_divisor), affine=affine,
                                track_running_stats=track_running_stats, dropout=dropout,
                                width_division=self.width_division,
                                stem_stride=self.stem_stride)

    def build_supernet(self, *, width_divisor: int = 1, affine: bool | None = None,
                       track_running_stats: bool | None = None) -> MobileNetSupernet:
        recal = self.supernet_bn == "recalibrated"
        return MobileNetSupernet(in_channels=self.in_channels, num_classes=self.num_classes,
                                 width_mult=self.width_mult,
                                 width_divisor=self._divisor(width_divisor),
                                 affine=recal if affine is None else affine,
                                 track_running_stats=recal if track_running_stats is None
                                 else track_running_stats, width_division=self.width_division,
                                 op_weights=self.op_weights, stem_stride=self.stem_stride)

    def scriptable(self, net: MobileNetNetwork) -> nn.Module:
        from efsnas.spaces.mobilenet.scriptable import ScriptableMobileNet

        return ScriptableMobileNet(net)

    # pictures
    drawing_size = (13.0, 2.6)

    def draw(self, subnet: Subnet, ax: Axes) -> None:
        from efsnas.spaces.mobilenet.draw import draw_layers

        draw_layers(self.check(subnet), ax, stage_channels=self.channels()["stages"])

    def build_shared_supernet(self, *, sharing: str, subspaces: int, route,
                              width_divisor: int = 1, thresholds=None):
        """K supernets in one module with the stem and head ("trunk") or the head shared
        (`efsnas.spaces.mobilenet.shared`)."""
        from efsnas.spaces.mobilenet.shared import SharedMobileNetSupernet

        if sharing not in ("head", "trunk"):
            raise UsageError(f"the mobilenet space has no shared_{sharing} structure; use "
                             "separate, shared_head or shared_trunk")
        recal = self.supernet_bn == "recalibrated"
        return SharedMobileNetSupernet(
            sharing=sharing, subspaces=subspaces, route=route, in_channels=self.in_channels,
            num_classes=self.num_classes, width_mult=self.width_mult,
            width_divisor=self._divisor(width_divisor), affine=recal,
            track_running_stats=recal, width_division=self.width_division,
            op_weights=self.op_weights, stem_stride=self.stem_stride)

    def describe(self) -> dict:
        return {"name": self.name, "num_classes": self.num_classes,
                "input_size": self.input_size, "in_channels": self.in_channels,
                "width_mult": self.width_mult, "width_division": self.width_division,
                "supernet_bn": self.supernet_bn, "op_weights": self.op_weights,
                "stem_stride": self.stem_stride, "channels": self.channels()}


register_space("mobilenet")(MobileNetSpace)  # the class itself, so its keyword options are checkable
