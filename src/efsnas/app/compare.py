"""Criteria side by side at an equal budget: every registered criterion (one-shot, FS-NAS,
GM-NAS, this method) and the extra rows they declare. Every run trains for the same epochs and
steps on the same minibatches (the same number of training images drawn), then scores the same
ground-truth cells. Staged criteria train in stages (efsnas.app.stages).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from efsnas.app import run
from efsnas.app.config import RunConfig, merge_dicts, parse_override, validate_config
from efsnas.app.files import RunFiles
from efsnas.app.stages import train_supernets
from efsnas.errors import UsageError
from efsnas.evaluate.plots import save_figure
from efsnas.registry import lookup, names
from efsnas.sampling import create_sampler
from efsnas.supernets import FewShotSupernets


@dataclass(frozen=True)
class Variant:
    criterion: str
    sampler: str
    label: str
    overrides: tuple[str, ...] = ()  # `--set` style settings on top of the base config


def variants() -> dict[str, Variant]:
    """One row per registered criterion (its own sampler), plus the extra rows a criterion
    declares (`compare_variants`, e.g. this method without SBS)."""
    out = {}
    for name in names("criterion"):
        cls = lookup("criterion", name)
        out[name] = Variant(name, cls.compare_sampler, cls.label or name)
        for suffix, (sampler, label) in cls.compare_variants.items():
            out[f"{name}-{suffix}"] = Variant(name, sampler, label)
    return out


def parse_variant(text: str) -> tuple[str, Variant]:
    """'NAME:BASE;KEY=VALUE;...' -> a variant named NAME: the built-in BASE with settings on
    top, e.g. 'separate-balanced:nonlinearity;split.structure=separate;train.sampler=balanced'."""
    name, sep, rest = text.partition(":")
    base, *sets = [p.strip() for p in rest.split(";") if p.strip()] if sep else [""]
    rows = variants()
    if not name.strip() or not sep or base not in rows:
        raise UsageError(f"bad --variant {text!r}: write NAME:BASE;KEY=VALUE;... with BASE one "
                         f"of {', '.join(rows)}")
    for item in sets:
        parse_override(item)  # a malformed setting fails here, before any training
    v = rows[base]
    label = f"{v.label}; " + ", ".join(sets) if sets else v.label
    return name.strip(), Variant(v.criterion, v.sampler, label, tuple(sets))


BUDGETS = ("equal", "published")


def variant_config(base: RunConfig, variant: Variant, seed: int, out: Path, *,
                   budget: str = "equal", space=None) -> RunConfig:
    """The base config with the variant's criterion, sampler and settings. A criterion other
    than the base's gets its own default width divisor and structure (full width, separate
    supernets for the baselines). "published" budgets lengthen training as the criterion's
    papers did (`SplitCriterion.published_schedule`)."""
    d = base.model_dump()
    if variant.criterion != base.split.criterion:
        d["split"]["width_divisor"] = None
        d["split"]["structure"] = None
    d["split"]["criterion"] = variant.criterion
    d["train"]["sampler"] = variant.sampler
    for item in variant.overrides:
        d = merge_dicts(d, parse_override(item))
    d["train"]["seed"] = seed
    d["out"] = str(out)
    cfg = validate_config(d)
    if budget == "published":
        crit = run.build_criterion(cfg)
        draws = len(create_sampler(cfg.train.sampler, crit.split(space), seed=0).draw(0))
        for key, value in crit.published_schedule(cfg.split, cfg.train.epochs, space,
                                                  draws).items():
            section, name = key.split(".")
            d[section][name] = value
        cfg = validate_config(d)
    return cfg


def train_variant(cfg: RunConfig, data, space, device, run_dir: Path, log=print
                  ) -> tuple[FewShotSupernets, dict]:
    """Train one row's supernets (every stage of its criterion) in `run_dir`; returns them and
    the cost record."""
    t = cfg.train
    criterion = run.build_criterion(cfg)
    files = RunFiles(run_dir)
    execution = run.execution_for(cfg, space, device)
    nets = run.initial_supernets(cfg, criterion, space, files)
    outcome = train_supernets(cfg, criterion, execution.module(nets), data, execution, files,
                              tensorboard=False, log_fn=log)
    nets = outcome.supernets
    steps = t.epochs * _steps_per_epoch(cfg, data)
    per_step = len(create_sampler(t.sampler, nets.split, seed=0).draw(0))
    cost = {
        "train_seconds": outcome.summary["train_seconds"],
        "split_seconds": outcome.summary["split_seconds"],
        "supernets": len(nets), "parameters": sum(p.numel() for p in nets.parameters()),
        "steps": steps, "images_drawn": steps * t.batch_size,
        "subnet_images": steps * t.batch_size * per_step,
        "subnet_passes": steps * per_step,  # forward/backward passes of one minibatch
    }
    return nets, cost


def _steps_per_epoch(cfg: RunConfig, data) -> int:
    n = max(1, len(data.train) // cfg.train.batch_size)
    return min(n, cfg.train.steps_per_epoch) if cfg.train.steps_per_epoch else n


# ---- scoring and the table ---------------------------------------------------------------------

METRICS = [  # (key, header, format)
    ("tau_all", "tau all", "{:.3f}"), ("tau_cross", "tau across subspaces", "{:.3f}"),
    ("tau_within", "tau within subspaces", "{:.2f}"),
    ("tau_top50", "tau top 50%", "{:.3f}"), ("spearman", "Spearman", "{:.3f}"),
    ("calibration", "mean predicted / true per subspace", "{:.1f}"),
    ("best_rank", "GT rank of best", "{:.1f}"), ("train_seconds", "train s", "{:.0f}"),
    ("split_seconds", "split s", "{:.1f}"), ("parameters", "params", "{:,.0f}"),
    ("subnet_passes", "subnet passes", "{:,.0f}"),
]


def score_cells(nets: FewShotSupernets, data, cfg: RunConfig, device, cells: list) -> dict:
    """Top-1 of every cell with its own supernet (one pass per equivalence class)."""
    from efsnas.evaluate.scorer import SubnetScorer

    execution = run.execution_for(cfg, nets.space, device)
    scorer = SubnetScorer(execution.module(nets), run.heldout_batches_for(cfg, data, execution),
                          bn=cfg.eval.bn, execution=execution)
    space = nets.space
    return {space.format(c): s for c, s in zip(cells, scorer.score(cells))}


def summarise(record: dict, ranking: dict) -> dict:
    tau = ranking["kendall_tau"]
    best = ranking.get("best_predicted") or {}
    return {
        "tau_all": tau["all"]["tau"], "tau_top1": tau["top_1%"]["tau"],
        "tau_top50": tau["top_50%"]["tau"], "tau_bottom50": tau["bottom_50%"]["tau"],
        "spearman": ranking["spearman_rho"]["rho"], "best_rank": best.get("true_rank"),
        "tau_cross": ranking.get("cross_subspace", {}).get("tau"),
        **{f"tau_within_{k}": v["tau"] for k, v in ranking.get("per_subspace", {}).items()},
        **{f"predicted_mean_{k}": v["predicted_mean"]
           for k, v in ranking.get("calibration", {}).items()},
        **{f"true_mean_{k}": v["true_mean"] for k, v in ranking.get("calibration", {}).items()},
        **{k: record[k] for k in ("train_seconds", "split_seconds", "parameters",
                                  "subnet_images", "images_drawn", "supernets")},
        # (cost records written before subnet_passes existed: images per pass = batch size)
        "subnet_passes": record.get("subnet_passes")
        or record["subnet_images"] * record["steps"] // record["images_drawn"],
    }


def aggregate(rows: dict[str, list[dict]]) -> dict[str, dict]:
    """Mean and standard deviation over seeds of every metric."""
    import statistics

    out = {}
    for name, runs in rows.items():
        agg = {"runs": len(runs)}
        for key in runs[0]:
            vals = [r[key] for r in runs if isinstance(r.get(key), (int, float))]
            if vals:  # the std of one run is unknown, not 0
                agg[key] = {"mean": statistics.fmean(vals),
                            "std": statistics.stdev(vals) if len(vals) > 1 else None}
        out[name] = agg
    return out


def markdown_table(agg: dict[str, dict]) -> str:
    head = "| criterion | seeds | " + " | ".join(h for _, h, _ in METRICS) + " |"
    lines = [head, "|" + "---|" * (len(METRICS) + 2)]
    for name, a in agg.items():
        cells = []
        for key, _, fmt in METRICS:
            if key in ("tau_within", "calibration"):
                cells.append(_per_subspace(a, key, fmt))
                continue
            m = a.get(key)
            if m is None:
                cells.append("n/a")
            elif key in ("tau_all", "tau_cross", "tau_top1", "tau_top50", "spearman",
                         "best_rank"):
                std = "n/a" if m["std"] is None else fmt.format(m["std"])
                cells.append(f"{fmt.format(m['mean'])} ± {std}")
            else:
                cells.append(fmt.format(m["mean"]))
        lines.append(f"| {name} | {a['runs']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _per_subspace(a: dict, key: str, fmt: str) -> str:
    """'0.51 / 0.30 / 0.32' (tau within each subspace) or '77.8/82.1 / ...' (calibration)."""
    if key == "tau_within":
        names = [k[len("tau_within_"):] for k in a if k.startswith("tau_within_")]
        return " / ".join(fmt.format(a[f"tau_within_{n}"]["mean"]) for n in names) or "n/a"
    names = [k[len("true_mean_"):] for k in a if k.startswith("true_mean_")]
    return " / ".join(f"{fmt.format(a[f'predicted_mean_{n}']['mean'])}/"
                      f"{fmt.format(a[f'true_mean_{n}']['mean'])}" for n in names) or "n/a"


def bar_chart(agg: dict[str, dict], path: Path, title: str = "") -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    keys = [("tau_all", "Kendall tau, all cells"), ("tau_cross", "Kendall tau, across subspaces"),
            ("spearman", "Spearman rho, all cells")]
    names = list(agg)
    fig = Figure(figsize=(2.5 + 1.1 * len(names), 4.8))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(keys)
    for i, (key, label) in enumerate(keys):
        means = [(agg[n].get(key) or {}).get("mean", float("nan")) for n in names]
        # one seed has no std: no error bar rather than a zero one
        stds = [(agg[n].get(key) or {}).get("std") for n in names]
        stds = [float("nan") if s is None else s for s in stds]
        ax.bar([j + i * width for j in range(len(names))], means, width, yerr=stds, capsize=3,
               label=label)
    ax.set_xticks([j + width for j in range(len(names))], names, rotation=30, ha="right",
                  fontsize=9)
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_ylabel("rank correlation with the ground truth")
    ax.set_title(title or "ranking quality per criterion (mean ± std over seeds)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
