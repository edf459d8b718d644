"""Scatter plot of predicted scores against ground-truth accuracy, one colour per subspace.

Drawn on a bare Agg canvas (no pyplot), so it works without a display and leaves the
matplotlib backend of the calling program untouched.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from efsnas.evaluate.ranking import _finite, correlate


def _fmt(tau: float | None) -> str:
    return "n/a" if tau is None else f"{tau:.3f}"


def scatter_plot(predicted: Mapping[str, float], truth: Mapping[str, float],
                 path: str | os.PathLike, *, subspace_of: Callable[[str], str] | None = None,
                 title: str = "") -> dict:
    """Write a PNG of predicted score (y) against true accuracy (x) for the shared cells with
    finite values; returns the `correlate` result the title and legend were drawn from."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    stats = correlate(predicted, truth, subspace_of=subspace_of)
    cells = [c for c in sorted(set(predicted) & set(truth))
             if _finite(predicted[c]) and _finite(truth[c])]
    groups: dict[str, list[str]] = {}
    for c in cells:
        groups.setdefault(str(subspace_of(c)) if subspace_of else "all", []).append(c)

    calibrated = subspace_of is not None and len(groups) > 1
    fig = Figure(figsize=(10.5 if calibrated else 6, 5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 2, 1) if calibrated else fig.add_subplot()
    size = 4 if len(cells) > 2000 else 12
    for name, members in sorted(groups.items()):
        label = name
        if subspace_of is not None:
            label = f"{name} (n={len(members)}, tau {_fmt(stats['per_subspace'][name]['tau'])})"
        ax.scatter([truth[c] for c in members], [predicted[c] for c in members], s=size,
                   alpha=0.5, linewidths=0, label=label)
    tau = stats["kendall_tau"]["all"]
    head = f"Kendall tau {_fmt(tau['tau'])}, Spearman rho {_fmt(stats['spearman_rho']['rho'])}"
    ax.set_title(f"{title}\n{head} (n={tau['n']})" if title else f"{head} (n={tau['n']})",
                 fontsize=10)
    ax.set_xlabel("ground-truth accuracy (%)")
    ax.set_ylabel("predicted score (supernet top-1, %)")
    ax.grid(alpha=0.3)
    if subspace_of is not None and groups:
        ax.legend(fontsize=8, markerscale=2, loc="best")
    if calibrated:
        _calibration_panel(fig.add_subplot(1, 2, 2), stats)
    fig.tight_layout()
    save_figure(fig, path)
    return stats


def _calibration_panel(ax, stats: dict) -> None:
    """Mean predicted score against mean true accuracy, one point per subspace: points on a
    line parallel to the diagonal are calibrated up to a constant; scattered ones are not."""
    cal = stats["calibration"]
    xs = [v["true_mean"] for v in cal.values()]
    ys = [v["predicted_mean"] for v in cal.values()]
    for (name, v), x, y in zip(cal.items(), xs, ys):
        ax.scatter([x], [y], s=40)
        ax.annotate(f"{name} (n={v['n']})", (x, y), fontsize=8, xytext=(4, 4),
                    textcoords="offset points")
    off = sum(y - x for x, y in zip(xs, ys)) / len(xs)
    lo, hi = min(xs), max(xs)
    pad = max(hi - lo, 1.0) * 0.2
    ax.plot([lo - pad, hi + pad], [lo - pad + off, hi + pad + off], "--", color="grey",
            linewidth=0.8, label="true mean + mean offset")
    cross = stats["cross_subspace"]["tau"]
    ax.set_title(f"calibration per subspace; tau across subspaces {_fmt(cross)}", fontsize=10)
    ax.set_xlabel("mean ground-truth accuracy (%)")
    ax.set_ylabel("mean predicted score (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def save_figure(fig, path: str | os.PathLike) -> None:
    """Save in the format the file name says (.png, .pdf, .svg, ...; PNG without a suffix)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format=path.suffix.lstrip(".").lower() or "png")

