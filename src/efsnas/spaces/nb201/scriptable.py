"""The stand-alone NAS-Bench-201 network in a form torch.jit.script accepts.

`NB201Network` runs its cells from a Python tuple and a frozenset (the code path it shares with
the supernet), which TorchScript cannot type. Here each cell is unrolled into its live edges: a
ModuleList of operations with the source and target node of each as int lists. The modules are
the network's own (shared, not copied), so the weights are the same.
"""

from __future__ import annotations

import torch
from torch import nn

from efsnas.spaces.nb201.cell import EDGES, OPS
from efsnas.spaces.nb201.network import Cell201, NB201Network


class ScriptableCell(nn.Module):
    """A fixed cell with only its live edges' operations, in a form torch.jit.script accepts (the
    same weights and sums as Cell201)."""

    def __init__(self, cell: Cell201, ops: tuple[int, ...], live: frozenset[int]):
        super().__init__()
        edges = sorted(live)  # the order NB201Network sums them in
        self.ops = nn.ModuleList(cell.edges[str(e)][OPS[ops[e]]] for e in edges)
        self.src = [EDGES[e][1] for e in edges]
        self.dst = [EDGES[e][0] for e in edges]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The cell's output: each node sums its live incoming edges, in Cell201's order."""
        # Nodes start at zero: 0 + y == y exactly, and a disconnected cell outputs zeros.
        zero = torch.zeros_like(x)
        nodes = [x, zero, zero, zero]
        for i, op in enumerate(self.ops):
            nodes[self.dst[i]] = nodes[self.dst[i]] + op(nodes[self.src[i]])
        return nodes[3]


class ScriptableNB201(nn.Module):
    """Same function and weights as `net`; forward mirrors `_Body.forward`."""

    def __init__(self, net: NB201Network):
        super().__init__()
        body = net.body
        self.stem = body.stem
        self.layers = nn.ModuleList(
            ScriptableCell(layer, net.cell, net.live) if isinstance(layer, Cell201) else layer
            for layer in body.layers
        )
        self.lastact = body.lastact
        self.classifier = body.classifier
        self.train(net.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for the batch `x`: stem, cells and reductions, the final batch norm and ReLU,
        global average pooling, the classifier."""
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x)
        x = self.lastact(x)
        return self.classifier(x.mean((2, 3)))
