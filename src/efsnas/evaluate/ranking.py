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

import importlib.util
import json
import math
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau, spearmanr

from efsnas.errors import UsageError

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

OFFICIAL_SUFFIXES = (".pth", ".pickle", ".pbz2", ".pkl")
OFFICIAL_PREFIXES = ("nas-bench-201", "nats-tss", "nats-sss")


def _is_official(path: Path) -> bool:
    name = path.name.lower()
    return path.is_dir() or name.endswith(OFFICIAL_SUFFIXES) or name.startswith(OFFICIAL_PREFIXES)


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
    return {k: float(v) for k, v in data.items()}


def load_ground_truth(path: str) -> dict[str, float]:
    """Cell -> accuracy from a JSON mapping, or CIFAR-10 test accuracy (200 epochs, mean over
    seeds) from an official NAS-Bench-201 / NATS-Bench file when its package is installed."""
    p = Path(path)
    if not p.exists():
        raise UsageError(f"ground truth {p} does not exist")
    if _is_official(p):
        return _load_official(p)
    try:
        data = json.loads(p.read_text())
    except UnicodeDecodeError:
        raise UsageError(f"ground truth {p} is not a text JSON file; for an official "
                         "NAS-Bench-201 / NATS-Bench file keep its .pth / .pickle.pbz2 name "
                         "or its folder") from None
    except json.JSONDecodeError as e:
        raise UsageError(f"ground truth {p} is not valid JSON (line {e.lineno}: {e.msg})") from None
    return validate_scores(data, f"ground truth {p}")


def _open_with(pkg: str, p: Path):
    if pkg == "nats_bench":
        from nats_bench import create

        return create(str(p), "tss", fast_mode=True, verbose=False)
    from nas_201_api import NASBench201API

    return NASBench201API(str(p), verbose=False)


def _open_benchmark(p: Path):
    """The benchmark API object for an official file; the file name says which package to try
    first."""
    name = p.name.lower()
    nb201_first = name.endswith(".pth") or name.startswith("nas-bench-201")
    order = ("nas_201_api", "nats_bench") if nb201_first else ("nats_bench", "nas_201_api")
    for pkg in order:
        if importlib.util.find_spec(pkg) is None:
            continue
        try:
            return _open_with(pkg, p)
        except Exception as e:  # the packages raise bare assertions and pickle errors
            raise UsageError(f"could not read {p} with {pkg}: {type(e).__name__}: {e}") from None
    raise UsageError(
        f"{p} looks like an official NAS-Bench-201 / NATS-Bench file; reading it needs "
        "`pip install nats_bench` (or nas-bench-201), or export a JSON mapping cell -> "
        "CIFAR-10 test accuracy and pass that instead"
    )


def _load_official(p: Path) -> dict[str, float]:
    api = _open_benchmark(p)
    out = {}
    for i in range(len(api)):
        try:
            info = api.get_more_info(i, "cifar10", hp="200", is_random=False)
        except TypeError:  # NAS-Bench-201 v1.0 API: (index, dataset, iepoch, use_12epochs, random)
            info = api.get_more_info(i, "cifar10", None, False, False)
        out[api.arch(i)] = float(info["test-accuracy"])
    if not out:
        raise UsageError(f"{p}: the benchmark API returned no architectures")
    return out
