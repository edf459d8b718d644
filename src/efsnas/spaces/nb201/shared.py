"""Few-shot supernets for NAS-Bench-201 that share part of the network across the subspaces.

Separate supernets (the paper's text) put their subspaces on unrelated accuracy scales; sharing
the parts every subnet uses keeps the subspaces comparable. Three levels, each a superset of the
one before:

- "head": the classifier (and the final BN) is shared; stem, cells and reductions per subspace.
- "trunk": stem, both reduction blocks and the head are shared; every cell has one copy per
  subspace, picked by the subnet's subspace.
- "prefix": the authors' NAS-Bench-201 code. Stem, reductions, head and the N cells of stage 1
  are shared; every later cell has copies picked by the cumulative nonlinearity count `acc`:
  `acc` starts at 0 and grows by the cell's count at every search cell, shared ones included;
  a cell uses copy 0 while acc <= thresholds[0], copy 1 while acc <= thresholds[1], and so on.
  The authors' thresholds are 15 and 20 for N=5 (3N = 15 cells). At other depths they scale
  with N to 3N and 4N (`default_thresholds`): the first one is the most stage 1 can accumulate
  (N cells of count 3), so, as at N=5, no cell of stage 1 would ever need a copy, and the second
  keeps the authors' ratio 20/15.
"""

from __future__ import annotations

from bisect import bisect_left

import torch
from torch import nn

from efsnas.api.supernet import Supernet
from efsnas.spaces.nb201.cell import EDGES, OPS, Cell, live_edges, nonlinearity_count
from efsnas.spaces.nb201.network import Cell201, NB201Network, ResidualReduction, _bn

SHARINGS = ("head", "trunk", "prefix")
MAX_CELL_COUNT = 3


def default_thresholds(N: int) -> tuple[int, ...]:
    """The authors' 15/20 at N=5, scaled with the depth: 3N and 4N."""
    return (3 * N, 4 * N)


class SharedSupernet(Supernet):
    """One network holding the K few-shot supernets with some parts shared (see module doc).

    `route(subnet) -> k` gives a subnet's subspace; the "prefix" sharing routes by count instead.
    """

    def __init__(self, *, C: int, N: int, in_channels: int, num_classes: int, sharing: str,
                 subspaces: int, route, thresholds: tuple[int, ...] | None = None):
        super().__init__()
        if sharing not in SHARINGS:
            raise ValueError(f"sharing must be one of {SHARINGS}, got {sharing!r}")
        self.sharing, self.N, self.route = sharing, N, route
        self.thresholds = tuple(thresholds) if thresholds else default_thresholds(N)
        if sharing == "prefix" and list(self.thresholds) != sorted(set(self.thresholds)):
            raise ValueError(f"thresholds must increase strictly, got {self.thresholds}")
        self.config = dict(C=C, N=N, in_channels=in_channels, num_classes=num_classes)
        K = subspaces if sharing == "head" else 1  # copies of the stem and reductions
        all_ops = [list(range(len(OPS)))] * len(EDGES)
        self.stem = nn.ModuleList(
            nn.Sequential(nn.Conv2d(in_channels, C, 3, padding=1, bias=False), _bn(C, False, False))
            for _ in range(K))
        layers: list[nn.ModuleList] = []
        self.kinds: list[str] = []
        c, j = C, 0
        for stage in range(3):
            if stage:
                layers.append(nn.ModuleList(ResidualReduction(c, 2 * c, False, False)
                                            for _ in range(K)))
                self.kinds.append("reduction")
                c *= 2
            for _ in range(N):
                j += 1
                if sharing == "prefix":
                    copies = 1 if j <= N else self._band(j * MAX_CELL_COUNT) + 1
                else:
                    copies = subspaces
                layers.append(nn.ModuleList(Cell201(c, all_ops, False, False)
                                            for _ in range(copies)))
                self.kinds.append("cell")
        self.layers = nn.ModuleList(layers)
        self.lastact = nn.Sequential(_bn(c, False, False), nn.ReLU())
        self.classifier = nn.Linear(c, num_classes)
        self._plan_cache: dict[Cell, tuple[frozenset[int], list[int]]] = {}

    def _band(self, acc: int) -> int:
        return bisect_left(self.thresholds, acc)  # acc <= thresholds[0] -> 0, ...

    def copies_for(self, subnet: Cell) -> list[int]:
        """The copy each layer (stem first, then every entry of `layers`) uses for `subnet`."""
        cell = tuple(subnet)
        k = self.route(cell) if self.sharing != "prefix" else 0
        count, j, acc = nonlinearity_count(cell), 0, 0
        plan = [min(k, len(self.stem) - 1)]
        for kind, layer in zip(self.kinds, self.layers):
            if kind == "cell":
                j += 1
                acc += count
                if self.sharing == "prefix":
                    plan.append(0 if j <= self.N else min(self._band(acc), len(layer) - 1))
                else:
                    plan.append(k)
            else:
                plan.append(min(k, len(layer) - 1))
        return plan

    def _plan(self, cell: Cell) -> tuple[frozenset[int], list[int]]:
        got = self._plan_cache.get(cell)
        if got is None:
            got = self._plan_cache[cell] = (live_edges(cell), self.copies_for(cell))
        return got

    def forward(self, x: torch.Tensor, subnet: Cell) -> torch.Tensor:
        cell = tuple(subnet)
        live, plan = self._plan(cell)
        x = self.stem[plan[0]](x)
        for kind, layer, copy in zip(self.kinds, self.layers, plan[1:]):
            x = layer[copy](x, cell, live) if kind == "cell" else layer[copy](x)
        return self.classifier(self.lastact(x).mean((2, 3)))

    def extract(self, subnet: Cell) -> NB201Network:
        """The stand-alone network of `subnet` with the weights of the copies it is routed to."""
        c = self.config
        net = NB201Network(subnet, **c, affine=False, track_running_stats=False)
        plan = self.copies_for(subnet)
        own = self.state_dict()

        def source(key: str) -> str:
            part, _, rest = key.partition(".")
            if part == "stem":
                return f"stem.{plan[0]}.{rest}"
            if part == "layers":
                i, _, rest = rest.partition(".")
                return f"layers.{i}.{plan[1 + int(i)]}.{rest}"
            return key

        net.load_state_dict({k: own[source(k[len("body."):])].clone()
                             for k in net.state_dict()}, strict=True)
        return net

    def describe(self) -> dict:
        d = {"space": "nb201", "structure": f"shared_{self.sharing}", **self.config}
        if self.sharing == "prefix":
            d["thresholds"] = list(self.thresholds)
        return d
