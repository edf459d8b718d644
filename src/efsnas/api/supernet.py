"""Supernet interface: a weight-sharing module with a small fixed set of verbs."""

from __future__ import annotations

from abc import abstractmethod

import torch
from torch import nn

from efsnas.api.search_space import Subnet


class Supernet(nn.Module):
    """Holds every choice of a space; `forward(x, subnet)` runs one subnet."""

    @abstractmethod
    def forward(self, x: torch.Tensor, subnet: Subnet) -> torch.Tensor:
        """Logits of `subnet` for the input batch `x`, through the shared weights."""
        ...

    @abstractmethod
    def extract(self, subnet: Subnet) -> nn.Module:
        """Stand-alone module for `subnet` holding copies of the supernet's weights."""

    @abstractmethod
    def describe(self) -> dict:
        """JSON-ready description (space, widths, structure)."""

    def subnet_parameters(self, subnet: Subnet) -> list[nn.Parameter]:
        """Parameters a forward of `subnet` touches (default: all)."""
        return list(self.parameters())
