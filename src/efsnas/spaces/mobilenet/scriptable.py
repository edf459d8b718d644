"""The stand-alone MobileNet network in a form torch.jit.script accepts.

`MobileNetNetwork` picks each layer's module from the subnet tuple at run time (the code path it
shares with the supernet); here the chosen MBConvs are laid out in one Sequential. The modules are
the network's own (shared, not copied), so the weights are the same.
"""

from __future__ import annotations

import torch
from torch import nn

from efsnas.spaces.mobilenet.encoding import SKIP, TOKENS
from efsnas.spaces.mobilenet.network import MobileNetNetwork


class ScriptableMobileNet(nn.Module):
    """Same function and weights as `net`; forward mirrors `_Body.forward`."""

    def __init__(self, net: MobileNetNetwork):
        super().__init__()
        body = net.body
        chosen = [layer.ops[TOKENS[c]]
                  for layer, c in zip(body.layers, net.subnet, strict=True) if c != SKIP]
        self.features = nn.Sequential(body.stem, body.first, *chosen, body.head)
        self.dropout = body.dropout
        self.classifier = body.classifier
        self.train(net.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for the batch `x`: the features, global average pooling, dropout, the
        classifier."""
        x = self.features(x).mean((2, 3))
        return self.classifier(self.dropout(x))
