"""Criteria side by side: every registered criterion (one-shot, FS-NAS, GM-NAS, this method)
and the extra rows they declare, at one or more budgets (`BUDGETS`), each run scoring the same
ground-truth cells. Staged criteria train in stages (efsnas.app.stages).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from efsnas.app import run
from efsnas.app.config import RunConfig, merge_dicts, parse_override, validate_config
from efsnas.app.files import RunFiles
from efsnas.app.stages import train_supernets, work_shares
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
    base, *sets = [p.strip() for p in rest.split(";") if p.strip()] or [""]  # 'NAME:' has none
    rows = variants()
    if not name.strip() or not sep or base not in rows:
        raise UsageError(f"bad --variant {text!r}: write NAME:BASE;KEY=VALUE;... with BASE one "
                         f"of {', '.join(rows)}")
    for item in sets:
        parse_override(item)  # a malformed setting fails here, before any training
    v = rows[base]
    label = f"{v.label}; " + ", ".join(sets) if sets else v.label
    return name.strip(), Variant(v.criterion, v.sampler, label, tuple(sets))


# equal: the same epochs on the same minibatches (images drawn); passes: as many subnet passes
# (minibatch forward/backward) as the base config (this method with SBS) makes at the equal
# budget, so a one-subnet-a-step row trains K times as many steps; published: as the criterion's
# papers trained.
BUDGETS = ("equal", "passes", "published")


def draws_per_step(cfg: RunConfig, space) -> int:
    """Subnets one training step of this config runs (its sampler on its criterion's split)."""
    return _draws(cfg.train.sampler, run.build_criterion(cfg).split(space))


def _draws(sampler: str, split) -> int:
    return len(create_sampler(sampler, split, seed=0).draw(0))


def variant_config(base: RunConfig, variant: Variant, seed: int, out: Path, *,
                   budget: str = "equal", space=None) -> RunConfig:
    """The base config with the variant's criterion, sampler and settings. A criterion other
    than the base's gets its own default width divisor and structure (full width, separate
    supernets for the baselines). "passes" lengthens training until the row makes as many
    subnet passes as the base config (split epochs at the same fraction of the run);
    "published" lengthens it as the criterion's papers did
    (`SplitCriterion.published_schedule`)."""
    if budget not in BUDGETS:
        raise UsageError(f"unknown budget {budget!r}; choose from {', '.join(BUDGETS)}")
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
    if budget == "equal":
        return cfg
    crit = run.build_criterion(cfg)
    draws = draws_per_step(cfg, space)
    if budget == "published":
        overrides = crit.published_schedule(cfg.split, cfg.train.epochs, space, draws)
    else:
        factor = draws_per_step(base, space) / draws
        epochs = max(1, round(cfg.train.epochs * factor))
        overrides = {"train.epochs": epochs,
                     **crit.stretched_schedule(cfg.split, epochs / cfg.train.epochs)}
    for key, value in overrides.items():
        section, name = key.split(".")
        d[section][name] = value
    return validate_config(d)


def train_variant(cfg: RunConfig, data, space, device, run_dir: Path, log=print
                  ) -> tuple[FewShotSupernets, dict]:
    """Train one row's supernets (every stage of its criterion) in `run_dir`; returns them and
    the cost record."""
    import time

    import torch

    t = cfg.train
    criterion = run.build_criterion(cfg)
    files = RunFiles(run_dir)
    execution = run.execution_for(cfg, space, device)
    nets = run.initial_supernets(cfg, criterion, space, files)
    cpu0 = time.process_time()
    outcome = train_supernets(cfg, criterion, execution.module(nets), data, execution, files,
                              tensorboard=False, log_fn=log)
    cpu = time.process_time() - cpu0
    nets = outcome.supernets
    steps = t.epochs * _steps_per_epoch(cfg, data)
    per_step = _draws(t.sampler, nets.split)
    subnet_images = steps * t.batch_size * per_step
    cost = {
        "train_seconds": outcome.summary["train_seconds"],
        "split_seconds": outcome.summary["split_seconds"],
        # CPU time of this process's training (all threads; a resumed run: its last part
        # only) and its thread count: a cost less sensitive than wall time to other jobs.
        "train_cpu_seconds": cpu, "threads": torch.get_num_threads(),
        "resumed": outcome.summary["resumed"],
        "supernets": len(nets), "parameters": sum(p.numel() for p in nets.parameters()),
        "steps": steps, "images_drawn": steps * t.batch_size,
        "subnet_images": subnet_images,
        "subnet_passes": steps * per_step,  # forward/backward passes of one minibatch
        # forward + backward ~ 3 forward passes of the subnets run, at the supernets' width
        "train_flops": 3 * subnet_images * mean_pass_flops(nets.split, t.sampler, seed=t.seed),
        # how the criterion shared out its passes: per stage, per supernet
        "passes_per_supernet": work_shares(files, t.batch_size),
    }
    return nets, cost


def mean_pass_flops(split, sampler: str, *, seed: int, steps: int = 256) -> float:
    """Mean multiply-accumulates per image of the subnets the sampler runs on this split (one
    forward pass, at the split's width), over `steps` replayed draws. Staged criteria trained
    their early stages on fewer supernets of the same space; the sampled subnets' mean cost
    is nearly the same there, so the final split stands for the whole run."""
    space, g = split.space, split.width_divisor
    draws = create_sampler(sampler, split, seed=seed)
    cache: dict = {}
    flops = [cache.setdefault(s, space.supernet_flops(s, width_divisor=g))
             for step in range(steps) for _, s in draws.draw(step)]
    return sum(flops) / len(flops)


def planned_flops(cfg: RunConfig, space, data) -> float:
    """Roughly what one run's training will cost, for ordering a pool's jobs (not a report):
    its planned subnet images times the mean forward FLOPs of the subnets its sampler draws on
    its criterion's initial split (a staged criterion's children cost about the same)."""
    split = run.build_criterion(cfg).split(space)
    images = (cfg.train.epochs * _steps_per_epoch(cfg, data) * cfg.train.batch_size
              * _draws(cfg.train.sampler, split))
    return images * mean_pass_flops(split, cfg.train.sampler, seed=cfg.train.seed, steps=32)


def longest_first(jobs: list, costs: list[float]) -> list:
    """`jobs` by descending cost, ties in their given order: on a pool the long runs start
    first and the short ones fill in around them, so the workers finish together (the runs
    are seeded one by one, so the order changes no result)."""
    order = sorted(range(len(jobs)), key=lambda i: (-costs[i], i))
    return [jobs[i] for i in order]


def _steps_per_epoch(cfg: RunConfig, data) -> int:
    n = max(1, len(data.train) // cfg.train.batch_size)
    return min(n, cfg.train.steps_per_epoch) if cfg.train.steps_per_epoch else n


# ---- scoring and the table ---------------------------------------------------------------------

METRICS = [  # (key, header, format)
    ("tau_all", "tau all", "{:.3f}"), ("tau_cross", "tau across subspaces", "{:.3f}"),
    ("tau_within", "tau within subspaces", "{:.2f}"),
    ("tau_top50", "tau top 50%", "{:.3f}"), ("spearman", "Spearman", "{:.3f}"),
    ("calibration", "mean predicted / true per subspace", "{:.1f}"),
    ("best_rank", "GT rank of best", "{:.1f}"),
    ("finalist_rank", "GT rank of finalist pick", "{:.1f}"),
    ("train_seconds", "train s", "{:.0f}"),
    ("train_cpu_seconds", "train CPU s", "{:.0f}"), ("split_seconds", "split s", "{:.1f}"),
    ("parameters", "params", "{:,.0f}"), ("images_drawn", "images", "{:,.0f}"),
    ("subnet_passes", "subnet passes", "{:,.0f}"), ("train_flops", "train TMACs", "{:.2f}"),
]


def score_cells(nets: FewShotSupernets, data, cfg: RunConfig, device, cells: list) -> dict:
    """Top-1 of every cell with its own supernet (one pass per equivalence class)."""
    from efsnas.evaluate.scorer import SubnetScorer

    execution = run.execution_for(cfg, nets.space, device)
    scorer = SubnetScorer(execution.module(nets), run.heldout_batches_for(cfg, data, execution),
                          bn=cfg.eval.bn, execution=execution,
                          recal_batches=run.recalibration_batches_for(cfg, data, execution))
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
        **{k: record[k] for k in ("train_cpu_seconds", "threads", "train_flops")
           if k in record},
        # (cost records written before subnet_passes existed: images per pass = batch size)
        "subnet_passes": record.get("subnet_passes")
        or record["subnet_images"] * record["steps"] // record["images_drawn"],
    }


def aggregate(rows: dict[str, list[dict]]) -> dict[str, dict]:
    """Mean, standard deviation and standard error of the mean over seeds of every metric."""
    import math
    import statistics

    out = {}
    for name, runs in rows.items():
        agg = {"runs": len(runs)}
        for key in runs[0]:
            vals = [r[key] for r in runs if isinstance(r.get(key), (int, float))]
            if vals:  # the std of one run is unknown, not 0
                std = statistics.stdev(vals) if len(vals) > 1 else None
                agg[key] = {"mean": statistics.fmean(vals), "std": std,
                            "se": None if std is None else std / math.sqrt(len(vals))}
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
                         "best_rank", "finalist_rank"):  # ± the standard error over seeds
                se = m.get("se", m["std"])  # (aggregates written before se existed: std)
                se = "n/a" if se is None else fmt.format(se)
                cells.append(f"{fmt.format(m['mean'])} ± {se}")
            else:
                cells.append(fmt.format(m["mean"] / (1e12 if key == "train_flops" else 1)))
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


def cost_figure(studies: dict[str, dict], path: Path, title: str = "") -> None:
    """Ranking quality against search cost (the paper's Figure 1, measured): Kendall tau over
    the supernets' training wall-clock (left) and counted training FLOPs (right), log scale.
    `studies`: budget -> its compare.json. One faint point per run; per criterion and budget
    the mean with standard-error bars; each criterion's budgets joined by a line."""
    import math

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import EngFormatter, LogLocator, NullFormatter

    criteria = list(dict.fromkeys(n for s in studies.values() for n in s["runs"]))
    markers = dict(zip(BUDGETS, "os^"))
    fig = Figure(figsize=(11, 4.6))
    FigureCanvasAgg(fig)
    panels = [("train_seconds", "supernet training wall-clock (s, log)"),
              ("train_flops", "training MACs, forward + backward of the subnets run (log)")]
    colors = {n: f"C{i}" for i, n in enumerate(criteria)}
    for i, (xkey, xlabel) in enumerate(panels):
        ax = fig.add_subplot(1, 2, i + 1)
        for name in criteria:
            line = []
            for budget, study in studies.items():
                runs = [r for r in study["runs"].get(name, [])
                        if isinstance(r.get(xkey), (int, float)) and r.get("tau_all") is not None]
                if not runs:
                    continue
                xs, ys = [r[xkey] for r in runs], [r["tau_all"] for r in runs]
                ax.scatter(xs, ys, color=colors[name], alpha=0.3, s=14,
                           marker=markers.get(budget, "o"))
                mx = sum(xs) / len(xs)
                my = sum(ys) / len(ys)
                se = (math.sqrt(sum((y - my) ** 2 for y in ys) / (len(ys) - 1) / len(ys))
                      if len(ys) > 1 else float("nan"))
                ax.errorbar([mx], [my], yerr=[se], color=colors[name], capsize=3,
                            marker=markers.get(budget, "o"), markersize=7)
                line.append((mx, my))
            line.sort()
            ax.plot([x for x, _ in line], [y for _, y in line], color=colors[name], lw=1.2,
                    label=name if i == 0 else None)
        ax.set_xscale("log")
        if i == 1:  # MACs span decades: engineering labels at 1-2-5, no crowded minor labels
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(EngFormatter())
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(xlabel, fontsize=9)
        ax.set_ylabel("Kendall tau with the ground truth (all cells)", fontsize=9)
        ax.grid(alpha=0.3, which="both")
    handles = [fig.axes[0].scatter([], [], color="grey", marker=markers.get(b, "o"), label=b)
               for b in studies]
    fig.axes[0].legend(fontsize=8, loc="best")
    fig.axes[1].legend(handles=handles, title="budget", fontsize=8, loc="lower right")
    fig.suptitle(title or "ranking quality against search cost (mean ± s.e. over seeds; "
                 "faint: single runs)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
