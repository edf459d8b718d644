"""The authors' shared-prefix few-shot supernet for NAS-Bench-201 (an option, not the default).

Stem, reduction blocks, head and the early cells are shared. Cell j (1-based, of 3N) has one copy
per band of the cumulative nonlinearity count j x count(cell), cut by `thresholds`; a cell whose
cumulative count can never reach the first threshold has a single shared copy.
"""

from __future__ import annotations

from bisect import bisect_right

import torch
from torch import nn

from efsnas.api.supernet import Supernet
from efsnas.spaces.nb201.cell import EDGES, OPS, Cell, live_edges, nonlinearity_count
from efsnas.spaces.nb201.network import Cell201, ResidualReduction, _bn

MAX_CELL_COUNT = 3


def default_thresholds(N: int) -> tuple[int, ...]:
    """The authors' 15/20 for N=5 (3N=15 cells), scaled to other depths."""
    return (max(1, round(15 * N / 5)), max(2, round(20 * N / 5)))


class SharedPrefixSupernet(Supernet):
    def __init__(self, *, C: int, N: int, in_channels: int, num_classes: int,
                 thresholds: tuple[int, ...] | None = None):
        super().__init__()
        self.thresholds = tuple(thresholds) if thresholds else default_thresholds(N)
        if list(self.thresholds) != sorted(set(self.thresholds)):
            raise ValueError(f"thresholds must increase strictly, got {self.thresholds}")
        self.config = dict(C=C, N=N, in_channels=in_channels, num_classes=num_classes)
        all_ops = [list(range(len(OPS)))] * len(EDGES)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C, 3, padding=1, bias=False),
                                  _bn(C, False, False))
        layers: list[nn.Module] = []
        c, j = C, 0
        for stage in range(3):
            if stage:
                layers.append(ResidualReduction(c, 2 * c, False, False))
                c *= 2
            for _ in range(N):
                j += 1
                copies = self.copy_index(j, MAX_CELL_COUNT) + 1
                layers.append(nn.ModuleList(Cell201(c, all_ops, False, False)
                                            for _ in range(copies)))
        self.layers = nn.ModuleList(layers)
        self.lastact = nn.Sequential(_bn(c, False, False), nn.ReLU())
        self.classifier = nn.Linear(c, num_classes)

    def copy_index(self, j: int, count: int) -> int:
        return bisect_right(self.thresholds, j * count)

    def forward(self, x: torch.Tensor, subnet: Cell) -> torch.Tensor:
        cell = tuple(subnet)
        live, count = live_edges(cell), nonlinearity_count(cell)
        x = self.stem(x)
        j = 0
        for layer in self.layers:
            if isinstance(layer, nn.ModuleList):
                j += 1
                x = layer[min(self.copy_index(j, count), len(layer) - 1)](x, cell, live)
            else:
                x = layer(x)
        return self.classifier(self.lastact(x).mean((2, 3)))

    def extract(self, subnet: Cell) -> nn.Module:
        raise NotImplementedError(
            "extracting from the shared-prefix structure is not supported; use separate supernets"
        )

    def describe(self) -> dict:
        return {"space": "nb201", "structure": "shared_prefix", "thresholds": list(self.thresholds),
                **self.config}
