"""`efsnas correlate`: ranking quality of predicted scores against a ground truth."""

from __future__ import annotations

import argparse
import json

from efsnas.app.config import DEFAULT_COMPONENTS
from efsnas.cli.common import (
    add_ground_truth_args,
    criterion_options,
    ground_truth_from_args,
    read_json,
    refuse_overwrite,
)
from efsnas.errors import UsageError
from efsnas.registry import create_criterion, create_space, list_criteria, list_spaces


def add_parser(sub) -> argparse.ArgumentParser:
    """Add the `efsnas correlate` subcommand and its options to `sub`; returns its parser."""
    p = sub.add_parser("correlate", help="Kendall tau / Spearman rho of scores vs ground truth",
                       description="Compare predicted scores with ground-truth accuracies: "
                                   "Kendall tau over all cells and the top 1% / top 50% / "
                                   "bottom 50% by ground truth, Spearman rho, the true rank of "
                                   "the predicted best cell, and tau per subspace of a split.")
    p.add_argument("predictions", metavar="PREDICTIONS",
                   help="JSON mapping cell -> score, or the evaluator's scores.json "
                        '(an object whose "scores" key holds that mapping)')
    add_ground_truth_args(p, positional=True)
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument("--plot", metavar="FILE",
                   help="write a scatter plot coloured by subspace, with the calibration per "
                        "subspace beside it; the suffix gives the format (.png, .pdf, .svg)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --plot FILE")
    p.add_argument("--space", default=DEFAULT_COMPONENTS["space"], choices=list_spaces(),
                   help="search space of the cells (default nb201)")
    p.add_argument("--criterion", default=DEFAULT_COMPONENTS["criterion"], choices=list_criteria(),
                   help="split whose subspaces get a tau each (default nonlinearity)")
    p.add_argument("--groups", default=None,
                   help="count grouping for the nonlinearity split, e.g. '0,1/2/3'")
    p.add_argument("--chance", type=float, default=None,
                   help="score given to ground-truth cells no supernet can score (disconnected "
                        "cells) in the extra 'all with unscorable' tau, as the authors computed "
                        "tau over all 15,625 cells (default: chance accuracy on --dataset, 10.0 "
                        "on the 10 classes of cifar10)")
    return p


def _title(predictions: str, criterion: str) -> str:
    """The plot's title: the run the scores came from (the evaluator's meta), not a path."""
    from pathlib import Path

    data = read_json(predictions, "predictions")
    meta = data.get("meta", {}) if isinstance(data, dict) else {}
    run = Path(meta["run"]).name if meta.get("run") else Path(predictions).stem
    images = f", {meta['images']:,} held-out images" if meta.get("images") else ""
    return f"supernet ranking of run {run} ({criterion} split{images})"


def load_predictions(path: str) -> dict[str, float]:
    """The predicted scores (cell -> score) of a JSON mapping or of the evaluator's scores.json,
    validated."""
    from efsnas.evaluate.ranking import validate_scores

    data = read_json(path, "predictions")
    if isinstance(data, dict) and isinstance(data.get("scores"), dict):
        data = data["scores"]
    return validate_scores(data, f"predictions {path}")


def run(args: argparse.Namespace) -> int:
    """Run `efsnas correlate` with the parsed arguments; returns the exit code."""
    from pathlib import Path

    from efsnas.evaluate.benchmark_files import DATASETS
    from efsnas.evaluate.ranking import correlate

    if args.plot:
        inputs = {Path(args.predictions).resolve(), Path(args.ground_truth).resolve()}
        if Path(args.plot).resolve() in inputs:
            raise UsageError(f"--plot {args.plot} is one of the inputs; choose another file")
        refuse_overwrite(args.plot, force=args.force, flag="--plot")
        _check_plot_suffix(args.plot)  # before the work, not a traceback from savefig after it

    predicted = load_predictions(args.predictions)
    truth = ground_truth_from_args(args)
    space = create_space(args.space)
    split = create_criterion(args.criterion, **criterion_options(args.criterion, args.groups)
                             ).split(space)

    def subspace_of(cell: str) -> str:
        return split.subspaces[split.route(space.parse(cell))].name

    if not set(predicted) & set(truth):
        raise UsageError(f"no cell in common between {args.predictions} (e.g. "
                         f"{min(predicted)}) and {args.ground_truth} (e.g. {min(truth)}); "
                         "are both in the same space and cell notation?")
    chance = args.chance if args.chance is not None else 100 / DATASETS[args.dataset or "cifar10"]
    unscorable = {c: chance for c in truth if c not in predicted and _unscorable(space, c)}
    stats = correlate(predicted, truth, subspace_of=subspace_of, unscorable=unscorable)
    if args.plot:
        from efsnas.evaluate.plots import scatter_plot

        scatter_plot(predicted, truth, args.plot, subspace_of=subspace_of,
                     title=_title(args.predictions, split.criterion))
    if args.json:
        print(json.dumps(stats, indent=1))
    else:
        print(format_table(stats, criterion=split.criterion))
        if args.plot:
            print(f"plot written to {args.plot}")
    return 0


def _check_plot_suffix(plot: str) -> None:
    from pathlib import Path

    from matplotlib.backend_bases import FigureCanvasBase

    suffix = Path(plot).suffix.lstrip(".").lower() or "png"  # no suffix: png, as plots.py
    known = FigureCanvasBase.get_supported_filetypes()
    if suffix not in known:
        raise UsageError(f"--plot {plot}: unknown image format {suffix!r}; use one of "
                         f"{', '.join(sorted(known))}")


def _unscorable(space, cell: str) -> bool:
    try:
        return not space.is_valid(space.parse(cell))
    except UsageError:
        return False  # not a cell of this space: reported as only in the ground truth


def _num(v: float | None, digits: int = 4) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def _row(label: str, stat: dict, key: str = "tau") -> str:
    reason = f"  ({stat['reason']})" if stat["reason"] else ""
    return f"{label:<26}{stat['n']:>7}  {_num(stat[key])}{reason}"


def format_table(stats: dict, *, criterion: str = "") -> str:
    """The correlation statistics as the plain-text table `efsnas correlate` prints."""
    n = stats["counts"]
    lines = [f"cells: {n['shared']} shared, {n['only_in_predictions']} only in predictions, "
             f"{n['only_in_truth']} only in ground truth"]
    for key, what in (("only_in_predictions", "only in predictions"),
                      ("only_in_truth", "only in ground truth"),
                      ("non_finite", "with NaN/inf, left out")):
        if n[key]:
            more = " ..." if n[key] > len(stats["examples"][key]) else ""
            lines.append(f"  {n[key]} {what}, e.g. {', '.join(stats['examples'][key])}{more}")
    lines.append(f"{'metric':<26}{'cells':>7}  value")
    for k, v in stats["kendall_tau"].items():
        lines.append(_row(f"Kendall tau ({k.replace('_', ' ')})", v))
    lines.append(_row("Spearman rho", stats["spearman_rho"], "rho"))
    if "per_subspace" in stats:
        lines.append(f"Kendall tau per subspace{f' ({criterion} split)' if criterion else ''}:")
        lines += [_row(f"  {name}", v) for name, v in stats["per_subspace"].items()]
        cross = stats["cross_subspace"]
        reason = f"  ({cross['reason']})" if cross["reason"] else ""
        lines.append(f"{'  across subspaces':<26}{cross['pairs']:>7}  {_num(cross['tau'])}"
                     f"{reason}   (pairs)")
        lines.append(f"calibration: {'subspace':<12}{'cells':>6}{'predicted':>11}{'true':>8}"
                     f"{'offset':>8}")
        for name, v in stats["calibration"].items():
            lines.append(f"             {name:<12}{v['n']:>6}{v['predicted_mean']:>11.2f}"
                         f"{v['true_mean']:>8.2f}{v['offset']:>+8.2f}")
    b = stats["best_predicted"]
    if b:
        lines.append(f"predicted best: {b['cell']} (score {_num(b['predicted'])}): true accuracy "
                     f"{_num(b['true_accuracy'], 2)}, rank {b['true_rank']} of {b['of']} "
                     f"(true best {_num(b['true_best_accuracy'], 2)})")
    return "\n".join(lines)
