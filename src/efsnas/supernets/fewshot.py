"""K supernets for the K subspaces of a split, with widths divided by the split's G.

Structures:
- "separate" (as the paper describes): K independent supernets (own stem, cells, head).
- "shared_head", "shared_trunk", "shared_prefix": one network holding the K supernets with the
  head; the stem, reductions and head; or those and the early cells shared (the last is the
  authors' NAS-Bench-201 code, whose later cells pick a copy by the cumulative nonlinearity
  count). Needs a space that can build it (`build_shared_supernet`).
"""

from __future__ import annotations

import torch
from torch import nn

from efsnas.api.search_space import Subnet
from efsnas.api.split import Split
from efsnas.errors import UsageError

STRUCTURES = ("separate", "shared_head", "shared_trunk", "shared_prefix")


class FewShotSupernets(nn.Module):
    """The K supernets of a split's K subspaces, as one module: a subnet runs on the supernet of its
    subspace. `structure` says what they share (see the module docstring)."""

    def __init__(self, split: Split, *, structure: str = "separate",
                 thresholds: tuple[int, ...] | None = None) -> None:
        super().__init__()
        if structure not in STRUCTURES:
            raise UsageError(f"unknown supernet structure {structure!r}; choose {STRUCTURES}")
        self.split = split
        self.space = split.space
        self.structure = structure
        if structure == "separate":
            self.supernets = nn.ModuleList(
                self.space.build_supernet(width_divisor=split.width_divisor)
                for _ in range(len(split))
            )
        else:
            build = getattr(self.space, "build_shared_supernet", None)
            if build is None:
                raise UsageError(f"the {self.space.name} space has no {structure} structure; "
                                 "use structure: separate")
            self.supernets = nn.ModuleList([build(
                sharing=structure.removeprefix("shared_"), subspaces=len(split),
                route=split.route, width_divisor=split.width_divisor, thresholds=thresholds)])

    def __len__(self) -> int:
        return len(self.split)

    def route(self, subnet: Subnet) -> int:
        """Index of the subspace (and supernet) a subnet belongs to."""
        return self.split.route(subnet)

    def supernet(self, k: int) -> nn.Module:
        """The module that trains and scores subspace k."""
        return self.supernets[k if self.structure == "separate" else 0]

    def forward(self, x: torch.Tensor, subnet: Subnet, k: int | None = None) -> torch.Tensor:
        """Logits of `subnet` for the batch `x`, on the supernet of subspace `k` (default:
        its own)."""
        k = self.route(subnet) if k is None else k
        return self.supernet(k)(x, subnet)

    def extract(self, subnet: Subnet) -> nn.Module:
        """Stand-alone module for `subnet` with copies of its own supernet's weights."""
        return self.supernet(self.route(subnet)).extract(subnet)

    def describe(self) -> dict:
        """Space, split, structure, each supernet's description and the parameter count,
        JSON-ready."""
        return {
            "space": self.space.describe(),
            "split": self.split.describe(),
            "structure": self.structure,
            "supernets": [m.describe() for m in self.supernets],
            "parameters": sum(p.numel() for p in self.parameters()),
        }
