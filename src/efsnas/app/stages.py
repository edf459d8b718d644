"""Training the supernets of a run, in stages when the criterion is staged.

A plain criterion trains once. A staged one (FS-NAS with transfer, GM-NAS) trains from its
initial split to each split epoch, then `criterion.refine` replaces the supernets by children
that inherit the weights, and training continues on the same cosine schedule (optimizer
momentum restarts at a split). Every stage but the last trains in its own resumable folder
(`stage0`, `stage1`, ...); the last one is the run folder itself, so a finished run looks the
same whatever its criterion. What the criterion learned is saved after every split
(`split-state.json`), so a resumed run replays it instead of learning it again.
"""

from __future__ import annotations

import itertools
import json
import random
import time
from dataclasses import dataclass

from efsnas.api.split import SplitCriterion
from efsnas.app.config import RunConfig, scaled_lr
from efsnas.app.files import RunFiles
from efsnas.execution import Execution
from efsnas.fileio import write_json_atomic
from efsnas.sampling import create_sampler
from efsnas.supernets import FewShotSupernets
from efsnas.train.distributed import DistContext
from efsnas.train.trainer import SupernetTrainer


def build_trainer(cfg: RunConfig, supernets: FewShotSupernets, data, run_dir, execution: Execution,
                  *, identity: dict, tensorboard: bool | None = None,
                  dist: DistContext | None = None) -> SupernetTrainer:
    """A trainer for `supernets` with the config's recipe."""
    t = cfg.train
    scale = scaled_lr(1.0, t.lr_batch, t.batch_size, dist.world_size if dist else 1)
    return SupernetTrainer(
        supernets=supernets, sampler=create_sampler(t.sampler, supernets.split, seed=t.seed),
        data=data, run_dir=run_dir, identity=identity, epochs=t.epochs,
        batch_size=t.batch_size, lr=t.lr * scale, lr_min=t.lr_min * scale, momentum=t.momentum,
        nesterov=t.nesterov, weight_decay=t.weight_decay, wd_weights_only=t.wd_weights_only,
        label_smoothing=t.label_smoothing, grad_clip=t.grad_clip, zero_grad=t.zero_grad,
        seed=t.seed, steps_per_epoch=t.steps_per_epoch, execution=execution,
        augment=data.augment if cfg.data.augment else None,
        tensorboard=t.tensorboard if tensorboard is None else tensorboard, progress=t.progress,
        dist=dist)


@dataclass
class TrainingOutcome:
    supernets: FewShotSupernets
    summary: dict  # epochs, steps, seconds, resumed, train_seconds, split_seconds, stages


def train_supernets(cfg: RunConfig, criterion: SplitCriterion, supernets: FewShotSupernets,
                    data, execution: Execution, files: RunFiles, *,
                    dist: DistContext | None = None, tensorboard: bool | None = None,
                    log_fn=print) -> TrainingOutcome:
    """Train `supernets` (the criterion's initial ones, freshly built) through every stage,
    resuming whatever the folders hold; returns the final supernets and a summary."""
    dist = dist or DistContext()
    say = log_fn if dist.is_main else (lambda *a: None)
    epochs = cfg.train.epochs
    points = criterion.split_epochs(epochs)
    bounds = [*points, epochs]
    rng = random.Random(cfg.train.seed)
    train_seconds = split_seconds = 0.0
    resumed = False
    trainer = None
    for i, until in enumerate(bounds):
        last = i == len(points)
        identity = cfg.training_identity()
        if not last:
            identity = {**identity, "stage": i, "split": supernets.split.describe()}
        folder = files.root if last else files.stage(i)
        trainer = build_trainer(cfg, supernets, data, folder, execution, identity=identity,
                                tensorboard=(tensorboard if last else False), dist=dist)
        if trainer.resume():
            resumed = resumed or last
            if last and trainer.finished:
                say(f"supernets already trained ({epochs} epochs) in {folder}")
            elif last:
                say(f"resuming from {trainer.checkpoint_path}: {trainer.epoch} epoch(s) and "
                    f"{trainer.batch_in_epoch} step(s) done")
        else:
            trainer.epoch = 0 if i == 0 else bounds[i - 1]  # one schedule across the stages
        if trainer.epoch < until:
            if not last:
                say(f"stage {i + 1} of {len(bounds)}: {len(supernets)} supernet(s) until "
                    f"epoch {until} in {folder}")
            t0 = time.time()
            trainer.fit(log=say, until=until)
            train_seconds += time.time() - t0
        else:
            train_seconds += _recorded_seconds(folder)
        if not last:
            t0 = time.time()
            supernets = execution.module(
                criterion.refine(supernets, _gradient_batches(cfg, data, execution), rng))
            split_seconds += time.time() - t0
            if dist.is_main:
                write_json_atomic(files.split_state, criterion.state_dict())
    recorded = criterion.recorded_split_seconds() if points else None
    if recorded is not None:  # a resumed run replays decisions in no time: their real cost
        split_seconds = recorded
    summary = {"epochs": epochs, "steps": trainer.step, "seconds": train_seconds,
               "train_seconds": train_seconds, "split_seconds": split_seconds,
               "resumed": resumed, "stages": len(bounds)}
    return TrainingOutcome(supernets, summary)


def load_criterion_state(criterion: SplitCriterion, files: RunFiles) -> None:
    """What a staged criterion learned in this run folder, when it has learned anything."""
    if files.split_state.exists():
        criterion.load_state_dict(json.loads(files.split_state.read_text()))


def _gradient_batches(cfg: RunConfig, data, execution: Execution, n: int = 2) -> list:
    """The training batches a split decision looks at (fixed: same seed, no augmentation)."""
    out = []
    for i, b in enumerate(data.train.batches(cfg.train.batch_size, shuffle=True,
                                             seed=cfg.train.seed + 7, epoch=0,
                                             device=execution.device,
                                             channels_last=execution.channels_last)):
        if i >= n:
            break
        out.append(b)
    return out


def _recorded_seconds(folder) -> float:
    from efsnas.train.trainer import read_jsonl

    path = folder / RunFiles.METRICS
    return sum(r.get("seconds", 0.0) for r in read_jsonl(path)) if path.exists() else 0.0


def work_shares(files: RunFiles, batch_size: int) -> list[list[int]]:
    """Subnet passes each supernet got, stage by stage (stage0, stage1, ..., the run folder
    last), summed over the epochs of the metrics files. An epoch recorded before the metrics
    held `images_per_supernet` counts as nothing, and one resumed mid-epoch counts its steps
    after the resume only."""
    from efsnas.train.trainer import read_jsonl

    folders = sorted((p for p in files.root.glob("stage*") if p.name[5:].isdigit()),
                     key=lambda p: int(p.name[5:])) + [files.root]
    out = []
    for folder in folders:
        path = folder / RunFiles.METRICS
        if not path.exists():
            continue
        total: list[int] = []
        for r in read_jsonl(path):
            shares = r.get("images_per_supernet") or []
            total = [a + b for a, b in itertools.zip_longest(total, shares, fillvalue=0)]
        out.append([images // batch_size for images in total])
    return out
