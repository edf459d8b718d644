"""Ranking metrics: how well predicted scores order subnets compared with a ground truth.

Kendall tau (tau-b, which accounts for ties) over all cells and over the best 1% / best 50% /
worst 50% of cells by ground truth, Spearman rho, and where the predicted best cell really ranks.
Cells present on one side only are counted and listed, never dropped silently.

Given the subspace of each cell, also the diagnosis of a few-shot ranking: tau within each
subspace, tau over the pairs of cells from different subspaces (what separate supernets get
wrong when they put their subspaces on unrelated accuracy scales), and a calibration table: per
subspace the mean predicted score against the mean true accuracy.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau, spearmanr

from efsnas.errors import UsageError
from efsnas.evaluate import benchmark_files as B

# (name, which end of the ground-truth ranking, fraction of the shared cells)
SUBSETS = (("top_1%", "top", 0.01), ("top_50%", "top", 0.5), ("bottom_50%", "bottom", 0.5))
EXAMPLES = 5  # mismatched cells listed per side


def _pair_stat(fn, x: list[float], y: list[float], key: str) -> dict:
    """One rank statistic with its sample size, or None and the reason it is undefined."""
    out: dict = {key: None, "p_value": None, "n": len(x), "reason": None}
    if len(x) < 2:
        out["reason"] = f"{len(x)} cell(s): needs at least 2"
    elif len(set(x)) < 2:
        out["reason"] = f"predictions are constant over these {len(x)} cells"
    elif len(set(y)) < 2:
        out["reason"] = f"ground truth is constant over these {len(x)} cells"
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = fn(x, y)
        stat, p = float(res[0]), float(res[1])
        if math.isnan(stat):
            out["reason"] = "undefined (scipy returned NaN)"
        else:
            out[key], out["p_value"] = stat, (None if math.isnan(p) else p)
    return out


def _tau(x: list[float], y: list[float]) -> dict:
    return _pair_stat(kendalltau, x, y, "tau")  # scipy's default variant is tau-b


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def cross_group_tau(x: list[float], y: list[float], groups: list[str], *,
                    chunk: int = 256) -> dict:
    """Kendall tau-b over the pairs of cells in different groups only: (concordant - discordant)
    / sqrt((pairs - ties in x) * (pairs - ties in y)), the pairs counted in row chunks so that
    all 15,625 cells fit in memory."""
    xa, ya = np.asarray(x, float), np.asarray(y, float)
    _, ga = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    n = len(xa)
    s = pairs = tx = ty = 0
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        # pairs (i, j) with i in this chunk and j > i
        upper = np.arange(n)[None, :] > np.arange(lo, hi)[:, None]
        cross = upper & (ga[lo:hi, None] != ga[None, :])
        sx = np.sign(xa[lo:hi, None] - xa[None, :])
        sy = np.sign(ya[lo:hi, None] - ya[None, :])
        s += int((sx * sy)[cross].sum())
        pairs += int(cross.sum())
        tx += int((cross & (sx == 0)).sum())
        ty += int((cross & (sy == 0)).sum())
    out: dict = {"tau": None, "pairs": pairs, "n": n, "reason": None}
    denom = math.sqrt(max(pairs - tx, 0) * max(pairs - ty, 0))
    if pairs == 0:
        out["reason"] = "no pair of cells from different subspaces"
    elif denom == 0:
        out["reason"] = "one side is constant over the cross-subspace pairs"
    else:
        out["tau"] = s / denom
    return out


def calibration(x: list[float], y: list[float], groups: list[str]) -> dict[str, dict]:
    """Per group: cells, mean predicted score, mean true accuracy, and their difference."""
    out: dict[str, dict] = {}
    for name in sorted(set(groups)):
        idx = [i for i, g in enumerate(groups) if g == name]
        pm = float(np.mean([x[i] for i in idx]))
        tm = float(np.mean([y[i] for i in idx]))
        out[name] = {"n": len(idx), "predicted_mean": pm, "true_mean": tm, "offset": pm - tm}
    return out


def correlate(predicted: Mapping[str, float], truth: Mapping[str, float], *,
              subspace_of: Callable[[str], str] | None = None,
              unscorable: Mapping[str, float] | None = None) -> dict:
    """Compare predicted scores with ground-truth accuracies (higher is better on both sides).

    Subsets by ground truth: the best floor(1% * n) and floor(50% * n) cells and the worst
    floor(50% * n), ties in the ground truth broken by cell string so the subsets are
    deterministic. Cells whose value is NaN or infinite on either side are left out of every
    statistic and counted under `counts["non_finite"]`. The result is JSON-ready.

    `unscorable` gives a score to ground-truth cells no supernet can score (NAS-Bench-201's
    disconnected cells, scored at chance as the authors did): they join one extra row,
    `kendall_tau["all_with_unscorable"]`, and no other statistic.
    """
    only_pred = sorted(set(predicted) - set(truth))
    only_truth = sorted(set(truth) - set(predicted))
    shared = sorted(set(predicted) & set(truth))
    bad = [c for c in shared if not (_finite(predicted[c]) and _finite(truth[c]))]
    cells = [c for c in shared if _finite(predicted[c]) and _finite(truth[c])]
    out: dict = {
        "counts": {"shared": len(shared), "compared": len(cells), "non_finite": len(bad),
                   "only_in_predictions": len(only_pred), "only_in_truth": len(only_truth)},
        "examples": {"only_in_predictions": only_pred[:EXAMPLES],
                     "only_in_truth": only_truth[:EXAMPLES], "non_finite": bad[:EXAMPLES]},
    }
    x = [float(predicted[c]) for c in cells]
    y = [float(truth[c]) for c in cells]
    out["kendall_tau"] = {"all": _tau(x, y)}
    by_truth = sorted(range(len(cells)), key=lambda i: (-y[i], cells[i]))
    for name, end, frac in SUBSETS:
        k = int(frac * len(cells))
        idx = by_truth[:k] if end == "top" else by_truth[len(cells) - k:]
        out["kendall_tau"][name] = _tau([x[i] for i in idx], [y[i] for i in idx])
    extra = sorted(c for c in (unscorable or {}) if c in truth and c not in predicted
                   and _finite(truth[c]))
    if extra:
        out["kendall_tau"]["all_with_unscorable"] = _tau(
            x + [float(unscorable[c]) for c in extra], y + [float(truth[c]) for c in extra])
    out["spearman_rho"] = _pair_stat(spearmanr, x, y, "rho")
    out["best_predicted"] = _best_predicted(cells, x, truth)
    if subspace_of is not None:
        names = [str(subspace_of(c)) for c in cells]
        groups: dict[str, list[int]] = {}
        for i, g in enumerate(names):
            groups.setdefault(g, []).append(i)
        out["per_subspace"] = {
            name: _tau([x[i] for i in idx], [y[i] for i in idx])
            for name, idx in sorted(groups.items())
        }
        out["cross_subspace"] = cross_group_tau(x, y, names)
        out["calibration"] = calibration(x, y, names) if cells else {}
    return out


def _best_predicted(cells: list[str], x: list[float], truth: Mapping[str, float]) -> dict | None:
    """The cell a search on these predictions would pick, and its place in the ground truth."""
    if not cells:
        return None
    best = min(range(len(cells)), key=lambda i: (-x[i], cells[i]))  # ties: first by cell string
    cell, acc = cells[best], float(truth[cells[best]])
    finite_truth = [float(v) for v in truth.values() if _finite(v)]
    return {
        "cell": cell,
        "predicted": x[best],
        "true_accuracy": acc,
        # competition ranking: 1 + cells strictly better, in the whole ground truth
        "true_rank": 1 + sum(v > acc for v in finite_truth),
        "of": len(finite_truth),
        "true_rank_among_compared": 1 + sum(float(truth[c]) > acc for c in cells),
        "true_best_accuracy": max(finite_truth),
    }


# ---- ground truth files ------------------------------------------------------------------------

def validate_scores(data, what: str) -> dict[str, float]:
    """A non-empty JSON object of cell string -> number (NaN allowed), else UsageError."""
    if not isinstance(data, dict) or not data:
        kind = "an empty object" if isinstance(data, dict) else f"a JSON {type(data).__name__}"
        raise UsageError(f"{what} holds {kind}; expected a non-empty JSON object mapping each "
                         'cell string to a number, e.g. {"|nor_conv_3x3~0|+...": 93.5}')
    for k, v in data.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise UsageError(f"{what}: the value of {k!r} is {json.dumps(v)[:40]}; expected a "
                             "number (an object mapping each cell string to a number)")
        if isinstance(v, int) and not -1e308 < v < 1e308:  # float() would overflow
            raise UsageError(f"{what}: the value of {k!r} is an integer too big for a float")
    return {k: float(v) for k, v in data.items()}


def load_ground_truth(path: str | os.PathLike, *, dataset: str | None = None,
                      metric: str | None = None, hp: str | None = None) -> dict[str, float]:
    """Cell -> accuracy from a JSON mapping or an official benchmark file.

    An official NAS-Bench-201 / NATS-Bench (topology) file gives the `metric` ("test" or
    "valid") accuracy on `dataset` ("cifar10", "cifar100" or "ImageNet16-120") after the `hp`
    schedule ("200" or "12" epochs), mean over seeds; None means cifar10, test, 200 (see
    efsnas.evaluate.benchmark_files). A JSON mapping holds one accuracy per cell, so naming a
    dataset, metric or hp with one is a UsageError rather than silently ignored.
    """
    B.check_column(dataset=dataset, metric=metric, hp=hp)
    p = Path(path)
    if not p.exists():
        raise UsageError(f"ground truth {p} does not exist")
    if B.is_official(p):
        given = {"dataset": dataset, "metric": metric, "hp": hp}
        return B.load_official(p, **{k: v or B.DEFAULTS[k] for k, v in given.items()})
    named = [f"{k}={v}" for k, v in (("dataset", dataset), ("metric", metric), ("hp", hp)) if v]
    if named:
        raise UsageError(f"{', '.join(named)} selects a column of an official NAS-Bench-201 / "
                         f"NATS-Bench file, but ground truth {p} is a JSON mapping with one "
                         "accuracy per cell; leave --dataset/--metric out, or pass the "
                         "official file")
    try:
        data = json.loads(p.read_text())
    except UnicodeDecodeError:
        raise UsageError(f"ground truth {p} is not a text JSON file; for an official "
                         "NAS-Bench-201 / NATS-Bench file keep its .pth / .pickle.pbz2 name "
                         "or its folder") from None
    except json.JSONDecodeError as e:
        raise UsageError(f"ground truth {p} is not valid JSON (line {e.lineno}: {e.msg})") from None
    except RecursionError:  # nested thousands deep
        raise UsageError(f"ground truth {p} is nested too deep to be a cell -> accuracy mapping"
                         ) from None
    return validate_scores(data, f"ground truth {p}")
