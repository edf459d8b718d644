"""The NAS-Bench-201 cell search space as a plug-in."""

from __future__ import annotations

from typing import TYPE_CHECKING

from efsnas.api.search_space import EvolutionMixin, SearchSpace, Subnet
from efsnas.errors import UsageError
from efsnas.registry import register_space
from efsnas.spaces.nb201 import cell as C_
from efsnas.spaces.nb201.network import NB201Network, NB201Supernet

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from torch import nn


class NB201Space(EvolutionMixin, SearchSpace):
    """15,625 cells of six edges; the same cell at all 3N positions of the network."""

    name = "nb201"
    invalid_word = "disconnected"
    channels_last_on_cpu = True  # 1.5-1.9x faster steps: benchmarks/memory_format.py
    # The authors' NAS-Bench-201 structure, and the best-ranking one measured (README, study).
    default_structure = "shared_prefix"

    def __init__(self, *, C: int = 16, N: int = 5, in_channels: int = 3, num_classes: int = 10,
                 input_size: int = 32) -> None:
        for key, v in (("C", C), ("N", N), ("in_channels", in_channels),
                       ("num_classes", num_classes), ("input_size", input_size)):
            if not isinstance(v, int) or v < 1:
                raise UsageError(f"nb201 space: {key} must be a positive integer, got {v!r}")
        if input_size % 4:
            raise UsageError(
                f"nb201 space: input_size {input_size} must be divisible by 4 (two stride-2 "
                "reductions); resize the images"
            )
        self.C, self.N, self.in_channels = C, N, in_channels
        self.num_classes, self.input_size = num_classes, input_size

    # encoding
    @property
    def choices(self) -> tuple[int, ...]:
        return (len(C_.OPS),) * len(C_.EDGES)

    def parse(self, text: str) -> Subnet:
        return C_.parse_cell(text)

    def format(self, subnet: Subnet) -> str:
        return C_.format_cell(subnet)

    def is_valid(self, subnet: Subnet) -> bool:
        return C_.is_connected(subnet)

    def canonical(self, subnet: Subnet) -> Subnet:
        return C_.canonical_cell(subnet)

    def reference_subnet(self, *, max_flops: float | None = None) -> Subnet | None:
        ref = (C_.OPS.index("nor_conv_3x3"),) * len(C_.EDGES)  # the all-3x3-convolution cell
        return ref if max_flops is None or self.flops(ref) <= max_flops else None

    # counting
    def nonlinearity_count(self, subnet: Subnet) -> int:
        return C_.nonlinearity_count(subnet)

    @property
    def possible_counts(self) -> tuple[int, ...]:
        return (0, 1, 2, 3)

    @property
    def default_groups(self) -> tuple[tuple[int, ...], ...]:
        return ((0, 1), (2,), (3,))

    @property
    def default_width_divisor(self) -> int:
        return 3  # C=16 -> 5 for K=3, the authors' best setting

    # costs (multiply-accumulates of conv and linear layers; parameters with affine BN)
    def _stages(self):
        c, h = self.C, self.input_size
        for stage in range(3):
            yield stage, c, h
            c, h = 2 * c, h // 2

    def flops(self, subnet: Subnet, *, C: int | None = None) -> int:
        cell = C_.canonical_cell(subnet)
        live = C_.live_edges(cell)
        base = C or self.C
        hw = self.input_size**2
        total = hw * self.in_channels * base * 9  # stem
        c, h = base, self.input_size
        for stage in range(3):
            if stage:
                ho = h // 2
                total += ho * ho * (9 * c * 2 * c + 9 * 4 * c * c + 2 * c * c)
                c, h = 2 * c, ho
            per_cell = sum(
                (1 if cell[e] == C_.CONV1 else 9) * c * c * h * h
                for e in live if cell[e] in C_.CONV_OPS
            )
            total += self.N * per_cell
        return total + c * self.num_classes

    def supernet_flops(self, subnet: Subnet, *, width_divisor: int = 1) -> float:
        return self.flops(subnet, C=max(1, self.C // width_divisor))

    def params(self, subnet: Subnet, *, C: int | None = None, affine: bool = True) -> int:
        cell = C_.canonical_cell(subnet)
        live = C_.live_edges(cell)
        bn = 2 if affine else 0
        c = C or self.C
        total = self.in_channels * c * 9 + bn * c
        for stage in range(3):
            if stage:
                total += 9 * c * 2 * c + 9 * 4 * c * c + 2 * c * c + 2 * bn * 2 * c
                c *= 2
            per_cell = sum(
                (1 if cell[e] == C_.CONV1 else 9) * c * c + bn * c
                for e in live if cell[e] in C_.CONV_OPS
            )
            total += self.N * per_cell
        return total + bn * c + c * self.num_classes + self.num_classes

    # modules
    def _width(self, width_divisor: int) -> int:
        if width_divisor < 1:
            raise UsageError(f"width divisor must be >= 1, got {width_divisor}")
        return max(1, self.C // width_divisor)

    def build_network(self, subnet: Subnet, *, width_divisor: int = 1, affine: bool = True,
                      track_running_stats: bool = True, dropout: float = 0.0) -> NB201Network:
        return NB201Network(self.check(subnet), C=self._width(width_divisor), N=self.N,
                            in_channels=self.in_channels, num_classes=self.num_classes,
                            affine=affine, track_running_stats=track_running_stats,
                            dropout=dropout)

    def build_supernet(self, *, width_divisor: int = 1, affine: bool = False,
                       track_running_stats: bool = False) -> NB201Supernet:
        return NB201Supernet(C=self._width(width_divisor), N=self.N, in_channels=self.in_channels,
                             num_classes=self.num_classes, affine=affine,
                             track_running_stats=track_running_stats)

    def build_shared_supernet(self, *, sharing: str, subspaces: int, route,
                              width_divisor: int = 1, thresholds: tuple[int, ...] | None = None):
        """K few-shot supernets in one network with the stem, head or prefix shared
        (`efsnas.spaces.nb201.shared`)."""
        from efsnas.spaces.nb201.shared import SharedSupernet

        return SharedSupernet(C=self._width(width_divisor), N=self.N,
                              in_channels=self.in_channels, num_classes=self.num_classes,
                              sharing=sharing, subspaces=subspaces, route=route,
                              thresholds=thresholds)

    def scriptable(self, net: NB201Network) -> nn.Module:
        from efsnas.spaces.nb201.scriptable import ScriptableNB201

        return ScriptableNB201(net)

    # pictures
    drawing_size = (6.0, 3.4)

    def draw(self, subnet: Subnet, ax: Axes) -> None:
        from efsnas.spaces.nb201.draw import draw_cell

        draw_cell(self.check(subnet), ax)

    def describe(self) -> dict:
        return {"name": self.name, "C": self.C, "N": self.N, "in_channels": self.in_channels,
                "num_classes": self.num_classes, "input_size": self.input_size}


register_space("nb201")(NB201Space)  # the class itself, so its keyword options are checkable
