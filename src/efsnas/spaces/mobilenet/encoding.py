"""MobileNet (ProxylessNAS-style) subnets as plain data: choices, text form, validity, counting,
and the channel plan. Pure Python, so sampling and counting cost microseconds.

A subnet is a tuple of 21 choice indices, one per searchable layer, in network order. Every
layer has the same 7 choices (so the mixed-radix index of the SearchSpace API works):

    index  0     1     2     3     4     5     6
    token  k3e3  k3e6  k5e3  k5e6  k7e3  k7e6  skip

`kKeE` is an MBConv with depthwise kernel K and expansion E; `skip` is Identity. The first layer
of each stage changes the resolution or the width, so it cannot be skipped: a subnet with `skip`
there parses (the text form is about syntax) but is not valid (`is_valid` is False) and is never
sampled, trained or searched.

Text form: the 21 tokens joined by '-', e.g. `k3e6-k5e3-skip-...`.
"""

from __future__ import annotations

from dataclasses import dataclass

from efsnas.errors import UsageError

# ---- choices table ------------------------------------------------------------------------

# (kernel, expansion) of choices 0..5, kernel-major; choice 6 is Identity.
MBCONV_CHOICES: tuple[tuple[int, int], ...] = tuple((k, e) for k in (3, 5, 7) for e in (3, 6))
TOKENS: tuple[str, ...] = tuple(f"k{k}e{e}" for k, e in MBCONV_CHOICES) + ("skip",)
SKIP = len(MBCONV_CHOICES)
NUM_CHOICES = len(TOKENS)

# ---- macro architecture ------------------------------------------------------------------------

# (output channels, layers, stride of the first layer) of the six searchable stages.
STAGES: tuple[tuple[int, int, int], ...] = (
    (32, 4, 2), (40, 4, 2), (80, 4, 2), (96, 4, 1), (192, 4, 2), (320, 1, 1),
)
STEM_CHANNELS = 32  # Conv3x3 stride 2
FIRST_CHANNELS = 16  # the fixed MBConv (expansion 1, kernel 3) after the stem
HEAD_CHANNELS = 1280  # Conv1x1 before global pooling
NUM_LAYERS = sum(n for _, n, _ in STAGES)
# Index of the first layer of each stage (cannot be Identity).
STAGE_FIRST: frozenset[int] = frozenset(
    sum(n for _, n, _ in STAGES[:i]) for i in range(len(STAGES))
)
NONLINEARITIES_PER_MBCONV = 2  # ReLU6 after the expand conv and after the depthwise conv

Subnet = tuple[int, ...]


@dataclass(frozen=True)
class LayerPlan:
    """One searchable layer: input and output channels, stride, whether Identity is allowed."""

    c_in: int
    c_out: int
    stride: int
    can_skip: bool


@dataclass(frozen=True)
class ChannelPlan:
    """Every width of the network for one width factor (width_mult / width_divisor)."""

    stem: int
    first: int
    layers: tuple[LayerPlan, ...]
    head: int

    def as_dict(self) -> dict:
        """The stem, first, head and per-stage output widths, JSON-ready."""
        return {"stem": self.stem, "first": self.first, "head": self.head,
                "stages": [self.layers[i].c_out for i in sorted(STAGE_FIRST)]}


def scale_channels(c: int, factor: float) -> int:
    """`c * factor` rounded as MobileNet does: to the nearest multiple of d, never below 8 and
    never more than 10% below `c * factor`. d = 8 when factor >= 0.5 (full width and the paper's
    halved supernets: 32, 40, 80 -> 16, 24, 40) and d = 4 for the tiny CPU configurations
    (factor < 0.5), so that stages still differ in width there. factor == 1 leaves c unchanged.
    """
    d = 8 if factor >= 0.5 else 4
    v = c * factor
    out = max(8, int(v + d / 2) // d * d)
    if out < 0.9 * v:
        out += d
    return out


WIDTH_DIVISIONS = ("exact", "rounded")


def channel_plan(width_mult: float = 1.0, width_divisor: int = 1, *,
                 division: str = "exact") -> ChannelPlan:
    """Widths of the stem, the fixed first block, the 21 searchable layers and the head; every
    channel count (stem and head included) is scaled by width_mult and divided by
    width_divisor. `division="exact"` divides the width_mult-scaled count by G as the authors'
    code does (stage 2 at G=2: 40 -> 20); "rounded" rounds c * width_mult / G to MobileNet's
    multiples of 8 (40 -> 24)."""
    if division not in WIDTH_DIVISIONS:
        raise ValueError(f"division must be one of {WIDTH_DIVISIONS}, got {division!r}")

    def width(c: int) -> int:
        if division == "exact":
            return max(1, scale_channels(c, width_mult) // width_divisor)
        return scale_channels(c, width_mult / width_divisor)

    stem, first = width(STEM_CHANNELS), width(FIRST_CHANNELS)
    layers = []
    c_in = first
    for c, n, s in STAGES:
        c_out = width(c)
        for i in range(n):
            layers.append(LayerPlan(c_in, c_out, s if i == 0 else 1, can_skip=i > 0))
            c_in = c_out
    return ChannelPlan(stem, first, tuple(layers), width(HEAD_CHANNELS))


# ---- text form, validity, counting ---------------------------------------------------------


def parse_subnet(text: str) -> Subnet:
    """Subnet from `k3e6-k5e3-skip-...`; the error names the bad token and its position."""
    if not isinstance(text, str):
        raise UsageError(f"a mobilenet subnet must be a string, got {type(text).__name__}")
    tokens = [t.strip() for t in text.strip().split("-")]
    if len(tokens) != NUM_LAYERS:
        raise UsageError(
            f"malformed mobilenet subnet {text!r}: expected {NUM_LAYERS} tokens joined by '-', "
            f"found {len(tokens)}"
        )
    out = []
    for i, tok in enumerate(tokens):
        if tok not in TOKENS:
            raise UsageError(
                f"malformed mobilenet subnet: token {i} ({tok!r}) is not one of "
                f"{', '.join(TOKENS)}"
            )
        out.append(TOKENS.index(tok))
    return tuple(out)


def format_subnet(subnet: Subnet) -> str:
    """Text form of a subnet: its layers' tokens joined by '-'."""
    return "-".join(TOKENS[c] for c in subnet)


def is_valid(subnet: Subnet) -> bool:
    """Identity is not allowed at the first layer of a stage."""
    return len(subnet) == NUM_LAYERS and all(subnet[i] != SKIP for i in STAGE_FIRST)


def nonlinearity_count(subnet: Subnet) -> int:
    """ReLU6s of the searchable layers: 2 per MBConv, 0 per Identity (stem and head excluded)."""
    return NONLINEARITIES_PER_MBCONV * sum(1 for c in subnet if c != SKIP)


POSSIBLE_COUNTS: tuple[int, ...] = tuple(
    NONLINEARITIES_PER_MBCONV * n for n in range(len(STAGE_FIRST), NUM_LAYERS + 1)
)
