"""NAS-Bench-201 networks built from one set of modules, two ways.

`NB201Network` is the stand-alone network of one cell (only its live edges are built);
`NB201Supernet` holds every operation on every edge and takes the cell to run in `forward`.
Both share module names, so extracting a subnet is a state-dict copy.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from efsnas.api.supernet import Supernet
from efsnas.layers import AvgPool3x3, BatchNorm2d, batch_stat_norm
from efsnas.spaces.nb201.cell import (
    CONV_OPS,
    EDGES,
    NONE,
    OPS,
    POOL,
    Cell,
    canonical_cell,
    live_edges,
)

# the edges leaving each of the nodes 0, 1, 2, in edge order
_EDGES_FROM = tuple(tuple(e for e, (_, s) in enumerate(EDGES) if s == src) for src in range(3))

# ---- operations table ---------------------------------------------------------------------


def _bn(c: int, affine: bool, track: bool) -> nn.BatchNorm2d:
    return BatchNorm2d(c, affine=affine, track_running_stats=track)


class ReLUConvBN(nn.Sequential):
    """NAS-Bench-201's convolution: ReLU, then a k x k convolution, then batch norm."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int, affine: bool, track: bool):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=False),
            _bn(c_out, affine, track),
        )


def make_op(name: str, c: int, affine: bool, track: bool) -> nn.Module:
    """The module of one NAS-Bench-201 operation (not 'none', which has none) on `c` channels."""
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(c, c, 1, 1, affine, track)
    if name == "nor_conv_3x3":
        return ReLUConvBN(c, c, 3, 1, affine, track)
    if name == "avg_pool_3x3":
        return AvgPool3x3()
    raise ValueError(f"no module for operation {name!r}")


# ---- cell and fixed blocks ------------------------------------------------------------------


class Cell201(nn.Module):
    """A cell holding, per edge, the operations listed in `ops_per_edge` (op indices)."""

    def __init__(self, c: int, ops_per_edge: Sequence[Sequence[int]], affine: bool, track: bool):
        super().__init__()
        self.edges = nn.ModuleDict()
        for e, ops in enumerate(ops_per_edge):
            d = nn.ModuleDict({OPS[o]: make_op(OPS[o], c, affine, track) for o in ops if o != NONE})
            if len(d):
                self.edges[str(e)] = d
        # stacking needs batch norms without parameters or running statistics (supernets)
        self.stack = not affine and not track

    def forward(self, x: torch.Tensor, cell: Cell, live: frozenset[int]) -> torch.Tensor:
        """The cell's output for `cell`, running only the `live` edges (those on an input-to-output
        path); zeros for a disconnected cell."""
        nodes: list[torch.Tensor | None] = [x, None, None, None]
        # Sources in order 0, 1, 2: a node is complete before it feeds an edge, and every node
        # sums its inputs in edge order, as edge by edge would.
        for src, out_edges in enumerate(_EDGES_FROM):
            todo = [e for e in out_edges if e in live]
            if not todo:
                continue
            outputs = self._stacked_convs(nodes[src], cell, todo) if self.stack else {}
            for e in todo:
                y = outputs.get(e)
                if y is None:
                    y = self.edges[str(e)][OPS[cell[e]]](nodes[src])
                    if cell[e] == POOL:  # parameter-free: one pooling serves every edge
                        outputs.update((f, y) for f in todo if cell[f] == POOL)
                dst = EDGES[e][0]
                nodes[dst] = y if nodes[dst] is None else nodes[dst] + y
        out = nodes[3]
        # A disconnected cell outputs zeros (every path holds a none edge).
        return out if out is not None else torch.zeros_like(x)

    def _stacked_convs(self, x: torch.Tensor, cell: Cell, edges: list[int]) -> dict:
        """Outputs of the ReLU-conv-BN edges leaving one node, convolutions of one kernel size
        run as one convolution with their weights stacked along output channels.

        Same function: one ReLU of the shared input, per-channel batch statistics (no affine,
        no running statistics) are the same whether the channels sit in one tensor or several.
        Faster on narrow supernets, where per-call costs dominate (benchmarks/train_step.py).
        """
        groups: dict[int, list[int]] = {}
        for e in edges:
            if cell[e] in CONV_OPS:
                groups.setdefault(cell[e], []).append(e)
        if not groups:
            return {}
        relu = torch.relu(x)
        outputs = {}
        for op, group in groups.items():
            mods = [self.edges[str(e)][OPS[op]] for e in group]
            if len(group) == 1:
                outputs[group[0]] = mods[0][2](mods[0][1](relu))
                continue
            conv = mods[0][1]
            weight = torch.cat([m[1].weight for m in mods])
            y = F.conv2d(relu, weight, None, conv.stride, conv.padding)
            y = batch_stat_norm(y, mods[0][2].eps)
            outputs.update(zip(group, y.split(conv.out_channels, dim=1)))
        return outputs


class ResidualReduction(nn.Module):
    """NAS-Bench-201 residual block: stride 2, doubles the channels."""

    def __init__(self, c_in: int, c_out: int, affine: bool, track: bool):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, affine, track)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, affine, track)
        self.shortcut = nn.Sequential(
            nn.AvgPool2d(2, stride=2), nn.Conv2d(c_in, c_out, 1, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The two convolutions plus the pooled, widened shortcut."""
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


class _Body(nn.Module):
    """Stem, 3 stages of N cells with two reductions, and the classifier head."""

    def __init__(self, *, C: int, N: int, in_channels: int, num_classes: int,
                 ops_per_edge: Sequence[Sequence[int]], affine: bool, track: bool):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, C, 3, padding=1, bias=False), _bn(C, affine, track)
        )
        layers: list[nn.Module] = []
        c = C
        for stage in range(3):
            if stage > 0:
                layers.append(ResidualReduction(c, 2 * c, affine, track))
                c *= 2
            layers.extend(Cell201(c, ops_per_edge, affine, track) for _ in range(N))
        self.layers = nn.ModuleList(layers)
        self.lastact = nn.Sequential(_bn(c, affine, track), nn.ReLU(inplace=False))
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor, cell: Cell, live: frozenset[int]) -> torch.Tensor:
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x, cell, live) if isinstance(layer, Cell201) else layer(x)
        x = self.lastact(x)
        return self.classifier(x.mean((2, 3)))


def _check_size(C: int, N: int, in_channels: int, num_classes: int) -> None:
    for name, v in (("C", C), ("N", N), ("in_channels", in_channels), ("num_classes", num_classes)):
        if int(v) < 1:
            raise ValueError(f"NAS-Bench-201 network needs {name} >= 1, got {v}")


# ---- the two builds -------------------------------------------------------------------------


class NB201Network(nn.Module):
    """Stand-alone network for one cell; dead edges are not built."""

    def __init__(self, cell: Cell, *, C: int = 16, N: int = 5, in_channels: int = 3,
                 num_classes: int = 10, affine: bool = True, track_running_stats: bool = True,
                 dropout: float = 0.0):
        super().__init__()
        _check_size(C, N, in_channels, num_classes)
        self.cell = canonical_cell(tuple(cell))
        self.live = live_edges(self.cell)
        ops = [[op] if e in self.live else [] for e, op in enumerate(self.cell)]
        self.body = _Body(C=C, N=N, in_channels=in_channels, num_classes=num_classes,
                          ops_per_edge=ops, affine=affine, track=track_running_stats)
        self.dropout = float(dropout)
        if self.dropout:
            # Dropout before the classifier, as in the retraining recipes.
            self.body.classifier = nn.Sequential(nn.Dropout(self.dropout), self.body.classifier)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the network's fixed cell for the batch `x`."""
        return self.body(x, self.cell, self.live)


class NB201Supernet(Supernet):
    """Every operation on every edge; BN without affine parameters or running statistics."""

    def __init__(self, *, C: int = 16, N: int = 5, in_channels: int = 3, num_classes: int = 10,
                 affine: bool = False, track_running_stats: bool = False):
        super().__init__()
        _check_size(C, N, in_channels, num_classes)
        self.config = dict(C=C, N=N, in_channels=in_channels, num_classes=num_classes,
                           affine=affine, track_running_stats=track_running_stats)
        all_ops = [list(range(len(OPS)))] * len(EDGES)
        self.body = _Body(C=C, N=N, in_channels=in_channels, num_classes=num_classes,
                          ops_per_edge=all_ops, affine=affine, track=track_running_stats)
        self._live_cache: dict[Cell, frozenset[int]] = {}

    def _live(self, cell: Cell) -> frozenset[int]:
        live = self._live_cache.get(cell)
        if live is None:
            live = self._live_cache[cell] = live_edges(cell)
        return live

    def forward(self, x: torch.Tensor, subnet: Cell) -> torch.Tensor:
        cell = tuple(subnet)
        return self.body(x, cell, self._live(cell))

    def extract(self, subnet: Cell) -> NB201Network:
        c = self.config
        net = NB201Network(subnet, C=c["C"], N=c["N"], in_channels=c["in_channels"],
                           num_classes=c["num_classes"], affine=c["affine"],
                           track_running_stats=c["track_running_stats"])
        own = self.state_dict()
        net.load_state_dict({k: own[k].clone() for k in net.state_dict()}, strict=True)
        return net

    def subnet_parameters(self, subnet: Cell) -> list[nn.Parameter]:
        net_keys = NB201Network(subnet, **self.config).state_dict().keys()
        named = dict(self.named_parameters())
        return [named[k] for k in net_keys if k in named]

    def describe(self) -> dict:
        return {"space": "nb201", "structure": "separate", **self.config}
