"""Criteria side by side at an equal budget: one-shot, FS-NAS, GM-NAS, and this method with and
without SBS. Every run trains for the same epochs and steps on the same minibatches (the same
number of training images drawn), then scores the same ground-truth cells.

Staged criteria (FS-NAS with transfer, GM-NAS) train one-shot first, then split: the children
inherit their parent's weights and training continues on the same cosine schedule (optimizer
momentum restarts at a split).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from efsnas import pipeline
from efsnas.config import RunConfig, merge_dicts, parse_override, validate_config
from efsnas.errors import UsageError
from efsnas.evaluate.plots import save_figure
from efsnas.fileio import write_json_atomic
from efsnas.supernets import FewShotSupernets


@dataclass(frozen=True)
class Variant:
    criterion: str
    sampler: str
    label: str
    overrides: tuple[str, ...] = ()  # `--set` style settings on top of the base config


def _variants() -> dict[str, Variant]:
    """One row per registered criterion (its own sampler), and this method without SBS."""
    from efsnas.registry import lookup, names

    out = {}
    for name in names("criterion"):
        cls = lookup("criterion", name)
        out[name] = Variant(name, cls.compare_sampler, cls.label or name)
    if "nonlinearity" in out:
        out["nonlinearity-nosbs"] = Variant("nonlinearity", "uniform",
                                            "this method without SBS (uniform sampling)")
    return out


VARIANTS = _variants()
DEFAULT_CRITERIA = list(VARIANTS)


def parse_variant(text: str) -> tuple[str, Variant]:
    """'NAME:BASE;KEY=VALUE;...' -> a variant named NAME: the built-in BASE with settings on
    top, e.g. 'separate-balanced:nonlinearity;split.structure=separate;train.sampler=balanced'."""
    name, sep, rest = text.partition(":")
    base, *sets = [p.strip() for p in rest.split(";") if p.strip()] if sep else [""]
    if not name.strip() or not sep or base not in VARIANTS:
        raise UsageError(f"bad --variant {text!r}: write NAME:BASE;KEY=VALUE;... with BASE one "
                         f"of {', '.join(VARIANTS)}")
    for item in sets:
        parse_override(item)  # a malformed setting fails here, before any training
    v = VARIANTS[base]
    label = f"{v.label}; " + ", ".join(sets) if sets else v.label
    return name.strip(), Variant(v.criterion, v.sampler, label, tuple(sets))


BUDGETS = ("equal", "published")


def published_schedule(cfg: RunConfig, space) -> dict:
    """Train settings for "published" budgets: after a split, each phase is lengthened by the
    number of supernets, so that every sub-supernet gets as many updates as the whole schedule
    gives one supernet (the FS-NAS and GM-NAS papers train each sub-supernet for the full
    schedule). FS-NAS: the one-shot warm-up, then K=5 times the rest. GM-NAS: between split
    points the phase grows by the supernets there (gm_groups ** splits done). Other criteria:
    unchanged (this method's SBS already updates every supernet at every step)."""
    t, sp = cfg.train, cfg.split
    if sp.criterion == "fsnas":
        warm = min(sp.fsnas_warmup_epochs, t.epochs - 1) if sp.fsnas_transfer else 0
        k = space.choices[sp.fsnas_position]  # one supernet per choice at the split position
        return {"train.epochs": warm + (t.epochs - warm) * k}
    if sp.criterion == "gmnas":
        points = [e for e in sp.gm_warmup_epochs if 0 < e < t.epochs]
        new_points, pos, prev = [], 0, 0
        for i, p in enumerate(points):
            pos += (p - prev) * sp.gm_groups ** i
            new_points.append(pos)
            prev = p
        total = pos + (t.epochs - prev) * sp.gm_groups ** len(points)
        return {"train.epochs": total, "split.gm_warmup_epochs": new_points}
    return {}


def variant_config(base: RunConfig, variant: Variant, seed: int, out: Path, *,
                   budget: str = "equal", space=None) -> RunConfig:
    d = base.model_dump()
    d["split"]["criterion"] = variant.criterion
    if variant.criterion != "nonlinearity":
        d["split"]["width_divisor"] = 1
        d["split"]["structure"] = "separate"
    d["train"]["sampler"] = variant.sampler
    for item in variant.overrides:
        d = merge_dicts(d, parse_override(item))
    d["train"]["seed"] = seed
    d["out"] = str(out)
    cfg = validate_config(d)
    if budget == "published":
        for key, value in published_schedule(cfg, space).items():
            section, name = key.split(".")
            d[section][name] = value
        cfg = validate_config(d)
    return cfg


class _Stages:
    """Trains a run in stages (one for plain criteria), each stage in its own folder."""

    def __init__(self, cfg: RunConfig, data, space, device, run_dir: Path, log) -> None:
        self.cfg, self.data, self.space, self.device = cfg, data, space, device
        self.run_dir, self.log = run_dir, log
        self.train_seconds = 0.0
        self.execution = pipeline.execution_for(cfg, space, device)

    def train(self, nets: FewShotSupernets, *, stage: int, start: int, until: int,
              sampler: str) -> FewShotSupernets:
        identity = {**self.cfg.training_identity(), "stage": stage,
                    "split": nets.split.describe()}
        trainer = pipeline.build_trainer(self.cfg, nets, self.data, self.run_dir / f"stage{stage}",
                                         self.execution, sampler=sampler, identity=identity,
                                         tensorboard=False)
        if not trainer.resume():
            trainer.epoch = start
        if trainer.epoch < until:
            t0 = time.time()
            trainer.fit(log=self.log, until=until)
            self.train_seconds += time.time() - t0
        else:
            self.train_seconds += _recorded_seconds(trainer.run_dir)
        return nets

    def grad_batches(self, n: int = 2) -> list:
        out = []
        for i, b in enumerate(self.data.train.batches(self.cfg.train.batch_size, shuffle=True,
                                                      seed=self.cfg.train.seed + 7, epoch=0,
                                                      device=self.device)):
            if i >= n:
                break
            out.append(b)
        return out


def _recorded_seconds(stage_dir: Path) -> float:
    return sum(r.get("seconds", 0.0) for r in pipeline.read_metrics(stage_dir))


def train_variant(cfg: RunConfig, v: Variant, data, space, device, run_dir: Path, log=print
                  ) -> tuple[FewShotSupernets, dict]:
    """Train one criterion's supernets; returns them and the cost record."""
    t = cfg.train
    torch.manual_seed(t.seed)
    stages = _Stages(cfg, data, space, device, run_dir, log)
    split_seconds = 0.0
    if v.criterion == "fsnas":
        nets = FewShotSupernets(pipeline.build_split(cfg, space))
        warm = pipeline.transfer_warmup_epochs(cfg)
        if warm:
            t0 = time.time()
            pipeline.warm_up_from_oneshot(cfg, nets, data, run_dir / "stage0", stages.execution,
                                          epochs=warm, log_fn=log)
            stages.train_seconds += time.time() - t0
        nets = stages.train(nets, stage=1, start=warm, until=t.epochs, sampler=v.sampler)
    elif v.criterion == "gmnas":
        from efsnas.split.gmnas import GMNASSplit, split_each

        crit_path = run_dir / "gmnas-split.json"
        crit = GMNASSplit(width_divisor=1)
        saved = GMNASSplit.from_json(crit_path.read_text()) if crit_path.exists() else None
        nets = FewShotSupernets(crit.split(space))
        points = [e for e in cfg.split.gm_warmup_epochs if 0 < e < t.epochs]
        start = 0
        rng = random.Random(t.seed)
        for i, point in enumerate(points):
            nets = stages.train(nets, stage=i, start=start, until=point, sampler=v.sampler
                                if i else "uniform")
            n_before = len(crit.decisions)
            if saved is not None and len(saved.decisions) >= n_before + len(nets):
                # replay a decision made before an interruption (same weights, same result)
                from efsnas.split.gmnas import split_supernets

                for d in saved.decisions[n_before:n_before + len(nets)]:
                    nets = split_supernets(nets, d, crit)
            else:
                nets, decisions = split_each(nets, crit, stages.grad_batches(),
                                             num_groups=cfg.split.gm_groups,
                                             samples=cfg.split.gm_samples, rng=rng,
                                             balanced=cfg.split.gm_balanced)
                write_json_atomic(crit_path, json.loads(crit.to_json()))
            split_seconds += sum(d.seconds for d in crit.decisions[n_before:])
            start = point
        nets = stages.train(nets, stage=len(points), start=start, until=t.epochs,
                            sampler=v.sampler if points else "uniform")
    else:
        split = pipeline.build_split(cfg, space)
        nets = stages.train(pipeline.build_supernets(cfg, split), stage=0, start=0,
                            until=t.epochs, sampler=t.sampler)
    steps = (t.epochs * _steps_per_epoch(cfg, data))
    per_step = len(nets) if t.sampler == "sbs" else 1
    cost = {
        "train_seconds": stages.train_seconds, "split_seconds": split_seconds,
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

    execution = pipeline.execution_for(cfg, nets.space, device)
    scorer = SubnetScorer(execution.module(nets), pipeline.heldout_batches_for(cfg, data, execution),
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
