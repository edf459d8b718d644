"""A picture of one subnet, in the format its file name says (.png, .svg, .pdf, ...).

The space draws (`SearchSpace.draw`, a plug-in hook); this module only sets up the figure on a
bare Agg canvas (no pyplot), so it works without a display and leaves the calling program's
matplotlib backend alone.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from efsnas.api.search_space import SearchSpace
from efsnas.errors import UsageError
from efsnas.evaluate.plots import save_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def draw_subnet(space: SearchSpace, subnet: Sequence[int] | str, path: str | os.PathLike, *,
                title: str | None = None) -> Figure:
    """Draw `subnet` (a tuple, or its text form) and save it to `path`; returns the figure.

    The default title is the subnet's text form and its nonlinearity count; `title=""` draws none.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    subnet = space.parse(subnet) if isinstance(subnet, str) else space.check(subnet)
    fig = Figure(figsize=space.drawing_size, dpi=120)
    canvas = FigureCanvasAgg(fig)
    suffix = Path(path).suffix.lstrip(".").lower() or "png"
    if suffix not in canvas.get_supported_filetypes():
        raise UsageError(f"cannot draw to {path}: unknown picture format {suffix!r}; use "
                         f"{', '.join(sorted(canvas.get_supported_filetypes()))}")
    ax = fig.add_subplot()
    space.draw(subnet, ax)
    if title is None:
        title = (f"{space.format(subnet)}\n{space.name}, "
                 f"nonlinearity count {space.nonlinearity_count(subnet)}"
                 f"{'' if space.is_valid(subnet) else ', not valid'}")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    return fig
