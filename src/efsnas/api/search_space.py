"""Search space interface: a plug-in that knows its subnets, their cost and their layers.

A subnet is plain data: a tuple of choice indices, one per searchable position.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from efsnas.errors import UsageError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from torch import nn

    from efsnas.api.supernet import Supernet

Subnet = tuple[int, ...]


class SearchSpace(ABC):
    """A family of subnets over a fixed macro architecture.

    The space object carries the macro hyper-parameters (widths, depth, input size, classes) so
    FLOPs, parameters and built modules all refer to the same network.
    """

    name: str = ""
    # Whether this space's networks train faster in channels_last memory format on CPU (on CUDA
    # it is always used); `train.channels_last: auto` follows it. benchmarks/memory_format.py
    # measures it for the built-in spaces.
    channels_last_on_cpu: bool = False
    # How the few-shot supernets of the count split share weights by default
    # (`efsnas.supernets.fewshot.STRUCTURES`); a space offering more than "separate" implements
    # `build_shared_supernet`.
    default_structure: str = "separate"
    # What reports call subnets that are not valid (NAS-Bench-201: "disconnected").
    invalid_word: str = "invalid"

    # ---- encoding -------------------------------------------------------------------------
    @property
    @abstractmethod
    def choices(self) -> tuple[int, ...]:
        """Number of choices at each position."""

    @abstractmethod
    def parse(self, text: str) -> Subnet:
        """Subnet from its text form; raises UsageError saying which part is malformed."""

    @abstractmethod
    def format(self, subnet: Subnet) -> str:
        """Text form of a subnet (inverse of parse)."""

    def check(self, subnet: Sequence[int]) -> Subnet:
        """Validate the shape of a subnet and return it as a tuple."""
        subnet = tuple(int(c) for c in subnet)
        if len(subnet) != len(self.choices):
            raise UsageError(
                f"{self.name} subnet needs {len(self.choices)} choices, got {len(subnet)}"
            )
        for i, (c, n) in enumerate(zip(subnet, self.choices)):
            if not 0 <= c < n:
                raise UsageError(f"{self.name} position {i}: choice {c} outside 0..{n - 1}")
        return subnet

    @abstractmethod
    def is_valid(self, subnet: Subnet) -> bool:
        """Whether the subnet may be trained and searched (e.g. connected)."""

    def canonical(self, subnet: Subnet) -> Subnet:
        """Representative of the subnet's equivalence class (subnets computing the same function
        with the same supernet weights). Default: every subnet is its own class."""
        return subnet

    # ---- enumeration and sampling ---------------------------------------------------------
    @property
    def size(self) -> int:
        """Number of subnets, valid or not: the product of the choices at each position."""
        n = 1
        for c in self.choices:
            n *= c
        return n

    @property
    def enumerable(self) -> bool:
        """Whether enumerating all subnets is cheap (a few hundred thousand at most)."""
        return self.size <= 500_000

    def enumerate(self) -> Iterator[Subnet]:
        """All subnets (valid or not) in index order."""
        if not self.enumerable:
            raise UsageError(f"the {self.name} space has {self.size:.3g} subnets: too many to list")
        for i in range(self.size):
            yield self.from_index(i)

    def index(self, subnet: Subnet) -> int:
        """Stable integer index (mixed radix, first position most significant)."""
        idx = 0
        for c, n in zip(subnet, self.choices):
            idx = idx * n + c
        return idx

    def from_index(self, index: int) -> Subnet:
        """The subnet at a stable integer index (inverse of `index`)."""
        if not 0 <= index < self.size:
            raise UsageError(f"{self.name} index {index} outside 0..{self.size - 1}")
        out = []
        for n in reversed(self.choices):
            index, c = divmod(index, n)
            out.append(c)
        return tuple(reversed(out))

    def sample(self, rng: random.Random) -> Subnet:
        """A uniformly random valid subnet."""
        return self.sample_where(lambda s: True, rng)

    def sample_where(
        self, predicate: Callable[[Subnet], bool], rng: random.Random, *, max_tries: int = 100_000
    ) -> Subnet:
        """Rejection sampling from the uniform distribution over valid subnets."""
        for _ in range(max_tries):
            s = self.sample_raw(rng)
            if self.is_valid(s) and predicate(s):
                return s
        raise UsageError(
            f"no valid {self.name} subnet satisfying the constraint in {max_tries} draws: "
            "the subspace is empty or too rare; check the split"
        )

    def sample_raw(self, rng: random.Random) -> Subnet:
        """Uniform over the product of choices, before validity."""
        return tuple(rng.randrange(n) for n in self.choices)

    def reference_subnet(self, *, max_flops: float | None = None) -> Subnet | None:
        """A fixed hand-designed subnet that a search result is checked against, within
        `max_flops` (units of `flops`) when given (None: the space has none there)."""
        return None

    # ---- the splitting criterion and costs --------------------------------------------------
    @abstractmethod
    def nonlinearity_count(self, subnet: Subnet) -> int:
        """Number of nonlinear functions on the subnet's deepest path (method section 3)."""

    @property
    @abstractmethod
    def possible_counts(self) -> tuple[int, ...]:
        """Every value nonlinearity_count can take."""

    @property
    @abstractmethod
    def default_groups(self) -> tuple[tuple[int, ...], ...]:
        """The method's default grouping of counts into subspaces."""

    @property
    def default_width_divisor(self) -> int:
        """How much the supernets are narrowed by default (1: full width)."""
        return 1

    @abstractmethod
    def flops(self, subnet: Subnet) -> int:
        """Multiply-accumulates of one forward pass of the stand-alone network (batch 1)."""

    @abstractmethod
    def params(self, subnet: Subnet) -> int:
        """Parameters of the stand-alone network."""

    def supernet_flops(self, subnet: Subnet, *, width_divisor: int = 1) -> float:
        """Multiply-accumulates of one forward pass of the subnet inside a supernet narrowed by
        `width_divisor` (batch 1): what one training pass costs. Default: the stand-alone
        cost over the divisor squared (convolutions scale with the square of the width)."""
        return self.flops(subnet) / width_divisor**2

    # ---- modules ----------------------------------------------------------------------------
    @abstractmethod
    def build_network(self, subnet: Subnet, **kwargs) -> nn.Module:
        """Stand-alone network for one subnet (for retraining)."""

    @abstractmethod
    def build_supernet(self, *, width_divisor: int = 1, **kwargs) -> Supernet:
        """Weight-sharing network holding every choice; forward takes the subnet to run."""

    def scriptable(self, net: nn.Module) -> nn.Module:
        """The stand-alone `net` (from build_network) as a module torch.jit.script accepts, with
        the same weights and the same function. Default: the network itself."""
        return net

    def describe(self) -> dict:
        """Macro hyper-parameters, JSON-ready (used to check that checkpoints match)."""
        return {"name": self.name}

    # ---- pictures ---------------------------------------------------------------------------
    # Figure size (inches) that suits `draw`; efsnas.draw sets the figure up with it.
    drawing_size: tuple[float, float] = (6.0, 4.0)

    def draw(self, subnet: Subnet, ax: Axes) -> None:
        """Draw the subnet's architecture on a matplotlib Axes (efsnas.draw.draw_subnet)."""
        raise UsageError(f"the {self.name} space cannot draw its subnets")


class EvolutionMixin:
    """Per-choice mutation and crossover; spaces override when validity needs care."""

    def mutate(self: SearchSpace, subnet: Subnet, rng: random.Random, prob: float = 0.1,
               *, max_tries: int = 1000) -> Subnet:
        """A valid child that differs from `subnet`, each choice redrawn with probability `prob`; a
        fresh random subnet when `max_tries` draws find none."""
        for _ in range(max_tries):
            child = tuple(
                rng.randrange(n) if rng.random() < prob else c for c, n in zip(subnet, self.choices)
            )
            if child != subnet and self.is_valid(child):
                return child
        return self.sample(rng)

    def crossover(self: SearchSpace, a: Subnet, b: Subnet, rng: random.Random,
                  *, max_tries: int = 1000) -> Subnet:
        """A valid child taking each choice from `a` or `b` at random; `a` itself when `max_tries`
        draws find none."""
        for _ in range(max_tries):
            child = tuple(x if rng.random() < 0.5 else y for x, y in zip(a, b))
            if self.is_valid(child):
                return child
        return a
