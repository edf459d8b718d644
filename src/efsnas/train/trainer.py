"""Supernet trainer: epochs of sampled steps, cosine LR, checkpoints, metrics, resume.

Resuming is exact on CPU: batch order and augmentation depend on (seed, epoch, batch), the
subnets on (seed, step), and the checkpoint holds weights, optimizer, position and RNG states.
"""

from __future__ import annotations

import json
import math
import signal
import time
from pathlib import Path

from torch import nn

from efsnas.api.sampler import SubnetSampler
from efsnas.errors import EfsnasError, TrainingError
from efsnas.execution import CPU, Execution
from efsnas.progress import Progress
from efsnas.supernets import FewShotSupernets
from efsnas.train.checkpoint import (
    check_identity,
    load_checkpoint,
    load_weights_into,
    rng_state,
    save_atomic,
    set_rng_state,
)
from efsnas.train.distributed import DistContext
from efsnas.train.step import build_optimizer, cosine_lr, train_step

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"


class Interrupted(EfsnasError):
    """Training stopped by SIGINT or SIGTERM after saving its checkpoint; exits with code 130 and
    resumes when the command is rerun."""

    exit_code = 130


def read_jsonl(path: Path) -> list[dict]:
    """The complete records of a JSON-lines file (a line cut short by a kill is skipped)."""
    out = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and "epoch" in rec:
            out.append(rec)
    return out


class SupernetTrainer:
    """Trains the few-shot supernets, each step on the subnets its sampler draws, with SGD on a
    cosine schedule; checkpoints in `run_dir` so an interrupted run resumes where it stopped."""

    def __init__(self, *, supernets: FewShotSupernets, sampler: SubnetSampler, data, run_dir: Path,
                 identity: dict | None = None, epochs: int, batch_size: int = 64,
                 lr: float = 0.025, lr_min: float = 0.001, momentum: float = 0.9,
                 nesterov: bool = True, weight_decay: float = 5e-4, wd_weights_only: bool = False,
                 label_smoothing: float = 0.0, grad_clip: float | None = None, seed: int = 0,
                 zero_grad: str = "set_to_none",
                 steps_per_epoch: int | None = None, execution: Execution = CPU,
                 augment: str | None = None, tensorboard: bool = False, progress: bool = True,
                 dist: DistContext | None = None) -> None:
        self.execution = execution
        self.supernets = execution.module(supernets)
        self.sampler, self.data, self.run_dir = sampler, data, Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.identity = identity if identity is not None else {}
        self.epochs, self.batch_size, self.steps_per_epoch = epochs, batch_size, steps_per_epoch
        self.lr, self.lr_min = lr, lr_min
        self.label_smoothing, self.grad_clip, self.seed = label_smoothing, grad_clip, seed
        if zero_grad not in ("set_to_none", "zeros"):
            raise ValueError(f"zero_grad must be set_to_none or zeros, got {zero_grad!r}")
        self.set_to_none = zero_grad == "set_to_none"
        self.device, self.augment = execution.device, augment
        self.scaler = execution.grad_scaler()
        self.dist = dist or DistContext()
        self.tensorboard, self.progress = tensorboard, progress
        self.optimizer = build_optimizer(self.supernets, lr=lr, momentum=momentum,
                                         nesterov=nesterov, weight_decay=weight_decay,
                                         wd_weights_only=wd_weights_only)
        self.modules = self._wrap_distributed()
        self.epoch, self.batch_in_epoch, self.step = 0, 0, 0
        self._stop_signal: int | None = None

    # ---- set-up ------------------------------------------------------------------------------
    def _wrap_distributed(self) -> list[nn.Module]:
        """One DDP wrapper per supernet: each sees exactly one forward/backward per step."""
        mods = [self.supernets.supernet(k) for k in range(len(self.supernets))]
        if not self.dist.enabled:
            return mods
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [self.device.index] if self.device.type == "cuda" else None
        wrapped = {id(m): DDP(m, device_ids=ids, find_unused_parameters=True) for m in mods}
        return [wrapped[id(m)] for m in mods]

    def lr_at(self, epoch: int) -> float:
        """The learning rate of `epoch` (0-based) on the cosine schedule over all epochs."""
        return cosine_lr(epoch, self.epochs, self.lr, self.lr_min)

    def steps_in_epoch(self) -> int:
        """Training steps per epoch: the training images over the global batch (at least one),
        capped by `steps_per_epoch` when set."""
        n = len(self.data.train) // (self.batch_size * self.dist.world_size)
        n = max(1, n)
        return min(n, self.steps_per_epoch) if self.steps_per_epoch else n

    # ---- checkpoints -------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        """Where the checkpoint is written in the run folder."""
        return self.run_dir / CHECKPOINT

    def state_dict(self) -> dict:
        """Everything a resume needs: the run identity, supernet and optimiser (and grad scaler)
        states, the position in training and the random states."""
        return {
            "format": "efsnas-checkpoint",
            "identity": json.dumps(self.identity, sort_keys=True),
            "supernets": self.supernets.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler else {},
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "step": self.step,
            "rng": rng_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Resume from what `state_dict` returned, after checking that it belongs to this run's
        identity."""
        check_identity(state, self.identity, self.checkpoint_path)
        load_weights_into(self.supernets, state["supernets"], self.checkpoint_path)
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.batch_in_epoch = state["epoch"], state["batch_in_epoch"]
        self.step = state["step"]
        set_rng_state(state["rng"])

    def save(self) -> None:
        """Write the checkpoint atomically (on the main process), then wait for every process."""
        if self.dist.is_main:
            save_atomic(self.state_dict(), self.checkpoint_path)
        self.dist.barrier()

    def resume(self) -> bool:
        """Load the run folder's checkpoint when there is one; True when resumed."""
        metrics = self.run_dir / METRICS
        if not self.checkpoint_path.exists():
            # A fresh start: epochs logged by a run whose checkpoint is gone (deleted, or never
            # copied with the folder) were not kept, and must not be counted twice.
            if self.dist.is_main and metrics.exists():
                metrics.unlink()
            return False
        self.load_state_dict(load_checkpoint(self.checkpoint_path, map_location=self.device))
        if self.dist.is_main and metrics.exists():
            # A kill between writing an epoch's metrics and its checkpoint would log it twice,
            # and one during the append leaves half a line: both go.
            records = read_jsonl(metrics)
            metrics.write_text("".join(json.dumps(r) + "\n" for r in records
                                       if r["epoch"] <= self.epoch))
        return True

    @property
    def finished(self) -> bool:
        """Whether every epoch has been trained."""
        return self.epoch >= self.epochs

    # ---- training ----------------------------------------------------------------------------
    def _on_signal(self, signum, frame) -> None:
        self._stop_signal = signum

    def fit(self, *, log=print, until: int | None = None) -> dict:
        """Train to epoch `until` (default: the last), from wherever the checkpoint left off;
        returns a summary. The LR schedule always spans all `epochs`."""
        stop = self.epochs if until is None else min(until, self.epochs)
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        writer = self._tensorboard()
        t_start = time.time()
        try:
            while self.epoch < stop:
                record = self._run_epoch(writer)
                if record is None:  # stopped by a signal, checkpoint written
                    raise Interrupted(
                        f"interrupted at epoch {self.epoch + 1}, step {self.batch_in_epoch}; "
                        f"checkpoint saved in {self.run_dir}: rerun the same command to resume"
                    )
                if record["loss_mean"] is not None:
                    log(f"epoch {record['epoch']}/{self.epochs}: loss {record['loss_mean']:.3f} "
                        f"train acc {record['acc_mean']:.3f} ({record['images_per_s']:.0f} img/s)")
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
            if writer is not None:
                writer.close()
        return {"epochs": self.epochs, "steps": self.step, "seconds": time.time() - t_start}

    def _run_epoch(self, writer) -> dict | None:
        for g in self.optimizer.param_groups:
            g["lr"] = self.lr_at(self.epoch)
        self.supernets.train()
        n_steps, skip = self.steps_in_epoch(), self.batch_in_epoch
        K = len(self.supernets)
        loss_sum, correct, seen = [0.0] * K, [0] * K, [0] * K
        bar = self._bar(n_steps, skip)
        t0, images = time.time(), 0
        batches = self.data.train.batches(
            self.batch_size, shuffle=True, seed=self.seed, epoch=self.epoch, augment=self.augment,
            device=self.device, drop_last=True, rank=self.dist.rank,
            world_size=self.dist.world_size, channels_last=self.execution.channels_last)
        for i, (x, y) in enumerate(batches):
            if i >= n_steps:
                break
            if i < skip:  # resuming mid-epoch: the same batches, already trained on
                continue
            draws = self.sampler.draw(self.step)
            losses, corrects = train_step(self.modules, draws, x, y, self.optimizer,
                                          label_smoothing=self.label_smoothing,
                                          grad_clip=self.grad_clip,
                                          autocast=self.execution.autocast,
                                          set_to_none=self.set_to_none,
                                          scaler=self.scaler)
            if not all(math.isfinite(lo) for lo in losses):
                raise TrainingError(
                    f"the training loss became {losses} at epoch {self.epoch + 1}, step "
                    f"{i + 1}: lower train.lr (now {self.lr}) or set train.grad_clip; nothing "
                    "after the last checkpoint was kept")
            for (k, _), lo, c in zip(draws, losses, corrects):
                loss_sum[k] += lo * len(y)
                correct[k] += c
                seen[k] += len(y)
            self.step += 1
            self.batch_in_epoch = i + 1
            images += len(y) * self.dist.world_size
            if bar is not None:
                bar.update(1, loss=f"{sum(losses) / len(losses):.3f}",
                           img_s=f"{images / max(time.time() - t0, 1e-9):.0f}")
            if self._stop_signal is not None:
                if bar is not None:
                    bar.close()
                self.save()
                return None
        if bar is not None:
            bar.close()
        if self.batch_in_epoch == 0 and skip == 0:
            raise TrainingError(
                f"no training step in epoch {self.epoch + 1}: {len(self.data.train)} training "
                f"images give no full batch of {self.batch_size} x {self.dist.world_size} "
                "process(es); use more images or a smaller train.batch_size")
        seconds = time.time() - t0
        record = {
            "epoch": self.epoch + 1, "step": self.step, "lr": self.optimizer.param_groups[0]["lr"],
            "loss": [loss_sum[k] / seen[k] if seen[k] else None for k in range(K)],
            "acc": [correct[k] / seen[k] if seen[k] else None for k in range(K)],
            # how the epoch's work was shared out over the supernets (this process's images)
            "images_per_supernet": seen,
            "seconds": seconds, "images_per_s": images / max(seconds, 1e-9),
        }
        done = [k for k in range(K) if seen[k]]
        record["loss_mean"] = (sum(record["loss"][k] for k in done) / len(done)) if done else None
        record["acc_mean"] = (sum(record["acc"][k] for k in done) / len(done)) if done else None
        self.epoch += 1
        self.batch_in_epoch = 0
        self._log_metrics(record, writer)
        self.save()
        return record

    # ---- reporting ---------------------------------------------------------------------------
    def _bar(self, total: int, initial: int):
        if not (self.progress and self.dist.is_main):
            return None
        return Progress(total, initial=initial, desc=f"epoch {self.epoch + 1}/{self.epochs}")

    def _tensorboard(self):
        if not (self.tensorboard and self.dist.is_main):
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # optional dependency
            return None
        return SummaryWriter(log_dir=str(self.run_dir / "tensorboard"))

    def _log_metrics(self, record: dict, writer) -> None:
        if not self.dist.is_main:
            return
        with open(self.run_dir / METRICS, "a") as f:
            f.write(json.dumps(record) + "\n")
        if writer is not None:
            for k, (lo, acc) in enumerate(zip(record["loss"], record["acc"])):
                if lo is not None:
                    writer.add_scalar(f"loss/supernet{k}", lo, record["epoch"])
                    writer.add_scalar(f"train_acc/supernet{k}", acc, record["epoch"])
            writer.add_scalar("lr", record["lr"], record["epoch"])
            writer.add_scalar("images_per_s", record["images_per_s"], record["epoch"])
