"""A MobileNet subnet as a picture: the 21 searchable layers as a strip of blocks.

Each block is labelled with its kernel and expansion (its height grows with the expansion, its
colour darkens with the kernel) or `skip`; stages are separated by a gap and a dotted line and
labelled with their width and stride.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from efsnas.spaces.mobilenet.encoding import MBCONV_CHOICES, SKIP, STAGES, Subnet

if TYPE_CHECKING:
    from matplotlib.axes import Axes

KERNEL_COLOURS = {3: "#c6dbef", 5: "#6baed6", 7: "#2171b5"}
GAP = 0.5  # between stages


def draw_layers(subnet: Subnet, ax: Axes, *, stage_channels: Sequence[int]) -> None:
    """Draw the subnet's layers on `ax` as boxes coloured by kernel size and as tall as the
    expansion, grouped into stages labelled with their channels and stride (MobileNetSpace.draw)."""
    from matplotlib.patches import Rectangle

    x, i = 0.0, 0
    for stage, ((_, n, stride), width) in enumerate(zip(STAGES, stage_channels, strict=True)):
        if stage:
            ax.axvline(x - GAP / 2 - 0.05, color="#888888", linestyle=":", linewidth=1)
        ax.text(x + (n - 0.1) / 2, 1.15, f"stage {stage + 1}\n{width} ch\nstride {stride}",
                ha="center", va="bottom", fontsize=7)
        for first in [True] + [False] * (n - 1):
            c = subnet[i]
            if c == SKIP:
                # red outline: skip where a stage's first layer needs an MBConv (invalid)
                edge = "#d62728" if first else "#888888"
                box = Rectangle((x, 0), 0.9, 1.0, facecolor="white", edgecolor=edge,
                                linestyle="--", gid=f"layer-{i}")
                label, colour = "skip", "#666666"
            else:
                k, e = MBCONV_CHOICES[c]
                box = Rectangle((x, (1 - e / 6) / 2), 0.9, e / 6, facecolor=KERNEL_COLOURS[k],
                                edgecolor="black", linewidth=0.6, gid=f"layer-{i}")
                label, colour = f"k{k}\ne{e}", "white" if k == 7 else "black"
            ax.add_patch(box)
            ax.text(x + 0.45, 0.5, label, ha="center", va="center", fontsize=7, color=colour)
            x, i = x + 1.0, i + 1
        x += GAP
    ax.set_xlim(-0.3, x - GAP + 0.3)
    ax.set_ylim(-0.1, 1.75)
    ax.set_axis_off()
