"""Few-shot MobileNet supernets sharing their ends: the authors' MobileNet code has a variant
with the stem and head shared by the K supernets (`OneShot_decom`) beside the fully separate one.

- "trunk": the stem, the fixed first block, the head and the classifier are shared; each of the
  21 searchable layers has one copy per subspace, picked by the subnet's subspace.
- "head": only the head (the last 1x1 convolution) and the classifier are shared.
"""

from __future__ import annotations

import torch
from torch import nn

from efsnas.api.supernet import Supernet
from efsnas.spaces.mobilenet.encoding import MBCONV_CHOICES, NUM_LAYERS, Subnet
from efsnas.spaces.mobilenet.network import (
    ChoiceLayer,
    MobileNetNetwork,
    MobileNetSupernet,
    NestedChoiceLayer,
    nested_states,
    stem_and_first,
)

SHARINGS = ("head", "trunk")


class SharedMobileNetSupernet(Supernet):
    """K MobileNet supernets in one module, with the ends shared (see module doc)."""

    def __init__(self, *, sharing: str, subspaces: int, route, op_weights: str = "separate",
                 **config):
        super().__init__()
        if sharing not in SHARINGS:
            raise ValueError(f"the mobilenet space shares {' or '.join(SHARINGS)}, not "
                             f"{sharing!r} (the prefix structure is NAS-Bench-201's)")
        self.sharing, self.route = sharing, route
        # One full supernet holds the shared parts (and subspace 0's layers); the other
        # subspaces get their own searchable layers, and their own stem when only the head
        # is shared.
        self.base = MobileNetSupernet(op_weights=op_weights, **config)
        self.config = config
        plan, bn = self.base.plan, (config["affine"], config["track_running_stats"])
        every = [range(len(MBCONV_CHOICES))] * NUM_LAYERS

        def layer(lp, ch):
            return (NestedChoiceLayer(lp, *bn) if op_weights == "nested"
                    else ChoiceLayer(lp, ch, *bn))

        self.layers = nn.ModuleList(
            nn.ModuleList(layer(lp, ch) for lp, ch in zip(plan.layers, every, strict=True))
            for _ in range(subspaces - 1))
        if sharing == "head":
            self.stems = nn.ModuleList(
                nn.ModuleDict(dict(zip(("stem", "first"),
                                       stem_and_first(plan, config["in_channels"], *bn,
                                                      self.base.config["stem_stride"]))))
                for _ in range(subspaces - 1))

    def _parts(self, k: int) -> tuple[nn.Module, nn.Module, nn.ModuleList]:
        body = self.base.body
        if k == 0:
            return body.stem, body.first, body.layers
        stem, first = body.stem, body.first
        if self.sharing == "head":
            stem, first = self.stems[k - 1]["stem"], self.stems[k - 1]["first"]
        return stem, first, self.layers[k - 1]

    def forward(self, x: torch.Tensor, subnet: Subnet) -> torch.Tensor:
        body = self.base.body
        stem, first, layers = self._parts(self.route(tuple(subnet)))
        x = first(stem(x))
        for layer, choice in zip(layers, subnet, strict=True):
            x = layer(x, choice)
        x = body.head(x).mean((2, 3))
        return body.classifier(body.dropout(x))

    def extract(self, subnet: Subnet) -> MobileNetNetwork:
        """The stand-alone network of `subnet` with the weights of its subspace's parts."""
        stem, first, layers = self._parts(self.route(tuple(subnet)))
        net = MobileNetNetwork(subnet, **self.config)
        src = {**{f"body.stem.{k}": v for k, v in stem.state_dict().items()},
               **{f"body.first.{k}": v for k, v in first.state_dict().items()},
               **{f"body.layers.{k}": v for k, v in layers.state_dict().items()},
               **nested_states("body.layers", layers, tuple(subnet))}
        own = self.base.state_dict()
        net.load_state_dict({k: (src[k] if k in src else own[k]).clone()
                             for k in net.state_dict()}, strict=True)
        return net

    def describe(self) -> dict:
        return {**self.base.describe(), "structure": f"shared_{self.sharing}"}
