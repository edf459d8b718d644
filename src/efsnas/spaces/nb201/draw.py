"""A NAS-Bench-201 cell as a picture: the 4-node DAG with each edge's operation.

Nodes sit on a line; edges between neighbours are straight and the three longer ones arc above or
below, so no two labels meet. Live edges are solid and coloured by operation, dead edges (on no
input-to-output path without `none`) grey and dashed, `none` edges faint and dotted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from efsnas.spaces.nb201.cell import EDGES, NONE, OPS, Cell, is_connected, live_edges

if TYPE_CHECKING:
    from matplotlib.axes import Axes

LABELS = {"skip_connect": "skip", "nor_conv_1x1": "conv 1x1", "nor_conv_3x3": "conv 3x3",
          "avg_pool_3x3": "avg pool 3x3"}
COLOURS = {"skip_connect": "#333333", "nor_conv_1x1": "#1f77b4", "nor_conv_3x3": "#d62728",
           "avg_pool_3x3": "#2ca02c"}
DEAD, NONE_COLOUR = "#9a9a9a", "#d4d4d4"
# Height of each edge's arc at its middle, in the edge order 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2.
HEIGHT = (0.0, 0.6, 0.0, 1.1, -0.6, 0.0)
RADIUS = 0.14


def _bezier(e: int, t: float) -> tuple[float, float]:
    """Point at t of edge e: a quadratic curve from its source to its target node."""
    dst, src = EDGES[e]
    # the control point at twice the height puts the curve's middle at HEIGHT[e]
    cx, cy = (src + dst) / 2, 2 * HEIGHT[e]
    return ((1 - t) ** 2 * src + 2 * t * (1 - t) * cx + t * t * dst,
            2 * t * (1 - t) * cy)


def edge_style(cell: Cell, e: int) -> dict:
    """Line properties of edge e: solid coloured when live, dashed grey when dead, faint when
    none."""
    if cell[e] == NONE:
        return {"color": NONE_COLOUR, "linestyle": ":", "linewidth": 1.0}
    if e not in live_edges(cell):
        return {"color": DEAD, "linestyle": "--", "linewidth": 1.5}
    return {"color": COLOURS[OPS[cell[e]]], "linestyle": "-", "linewidth": 2.2}


def draw_cell(cell: Cell, ax: Axes) -> None:
    """Draw the cell's four nodes and six labelled edges on `ax`, each edge styled by edge_style,
    with notes for dead edges and a disconnected cell (NB201Space.draw)."""
    from matplotlib.patches import Circle

    n = 40
    for e in range(len(EDGES)):
        style = edge_style(cell, e)
        pts = [_bezier(e, i / n) for i in range(n + 1)]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], gid=f"edge-{e}", zorder=1, **style)
        if cell[e] == NONE:
            continue
        # arrow head three quarters along, clear of the label in the middle
        ax.annotate("", xy=_bezier(e, 0.8), xytext=_bezier(e, 0.74), zorder=2,
                    arrowprops={"arrowstyle": "-|>", "color": style["color"], "lw": 1.2,
                                "mutation_scale": 12})
        x, y = _bezier(e, 0.5)
        ax.text(x, y + (0.1 if HEIGHT[e] == 0 else 0), LABELS[OPS[cell[e]]], ha="center",
                va="center", fontsize=8, color=style["color"], zorder=4,
                bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none"})
    for node in range(4):
        ax.add_patch(Circle((node, 0), RADIUS, facecolor="white", edgecolor="black", zorder=3))
        ax.text(node, 0, str(node), ha="center", va="center", fontsize=9, zorder=4)
    ax.text(-RADIUS - 0.08, 0, "input", ha="right", va="center", fontsize=8)
    ax.text(3 + RADIUS + 0.08, 0, "output", ha="left", va="center", fontsize=8)
    notes = []
    if any(cell[e] != NONE and e not in live_edges(cell) for e in range(len(EDGES))):
        notes.append("dashed grey: dead edge (on no input-output path)")
    if not is_connected(cell):
        notes.append("disconnected: the cell outputs zeros")
    if notes:
        ax.text(1.5, -0.95, "; ".join(notes), ha="center", va="center", fontsize=7, color=DEAD)
    ax.set_xlim(-0.9, 3.9)
    ax.set_ylim(-1.1, 1.35)
    ax.set_aspect("equal")
    ax.set_axis_off()
