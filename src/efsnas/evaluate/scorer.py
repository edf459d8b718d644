"""Score subnets with the supernet of their own subspace: top-1 and loss on held-out batches.

The held-out images are materialised once as device batches and reused for every subnet, so
ranking thousands of cells costs forward passes only. Each equivalence class is scored once.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from efsnas.api.search_space import Subnet
from efsnas.errors import UsageError
from efsnas.execution import CPU, Execution
from efsnas.progress import Progress
from efsnas.supernets import FewShotSupernets

Batches = Sequence[tuple[torch.Tensor, torch.Tensor]]


def _bn_layers(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


class SubnetScorer:
    """Scores subnets; `bn="batch"` uses batch statistics (NAS-Bench-201 default),
    `bn="recalibrate"` re-estimates running statistics on training batches first (ImageNet)."""

    def __init__(self, supernets: FewShotSupernets, batches: Batches, *, bn: str = "batch",
                 recal_batches: Batches | None = None, execution: Execution = CPU) -> None:
        if bn not in ("batch", "recalibrate"):
            raise ValueError(f"bn must be 'batch' or 'recalibrate', got {bn!r}")
        if bn == "recalibrate" and not recal_batches:
            raise ValueError("bn='recalibrate' needs recal_batches")
        # a Sequence is kept as it is (NormalisedBatches normalise on reading); else listed once
        batches = batches if isinstance(batches, Sequence) else list(batches)
        if not len(batches):
            raise UsageError("the held-out set is empty: no image to score subnets on; keep "
                             "some images out of training (data.max_heldout, data.heldout)")
        self.supernets, self.batches, self.bn = supernets, batches, bn
        self.device = batches[0][1].device if len(batches) else torch.device("cpu")
        self.recal_batches = list(recal_batches or [])
        self.autocast = execution.autocast
        self.space = supernets.space
        self.cache: dict[tuple[int, Subnet], tuple[float, float]] = {}
        self.evaluated = 0  # forward passes over the held-out set actually run
        self._tracks_stats: dict[int, bool] = {}

    @torch.inference_mode()
    def _recalibrate(self, module: nn.Module, subnet: Subnet) -> None:
        bns = _bn_layers(module)
        for m in bns:
            if m.track_running_stats:
                m.reset_running_stats()
                m.momentum = None  # cumulative average over the recalibration batches
        module.train()
        for x, _ in self.recal_batches:
            with self.autocast():
                module(x, subnet)

    def key(self, subnet: Subnet) -> tuple[int, Subnet]:
        """What two subnets must share to share a score: the supernet they are routed to and
        their equivalence class. The class alone is not enough: under a position-based split
        (FS-NAS, GM-NAS) a cell whose split position is dead has the same class as cells of
        other subspaces, yet its own supernet is the one of its own choice there."""
        subnet = tuple(subnet)
        return self.supernets.route(subnet), self.space.canonical(subnet)

    @torch.inference_mode()
    def _evaluate(self, k: int, subnet: Subnet) -> tuple[float, float]:
        module = self.supernets.supernet(k)
        if self.bn == "recalibrate":
            self._recalibrate(module, subnet)
            module.eval()
        else:
            # Batch statistics: BN without running statistics does this in eval mode already;
            # modules that track them must run in train mode (no grad is taken here).
            mode = self._tracks_stats.get(id(module))
            if mode is None:
                mode = self._tracks_stats[id(module)] = any(m.track_running_stats
                                                            for m in _bn_layers(module))
            if module.training != mode:  # train() walks thousands of modules: only on change
                module.train(mode)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        loss = torch.zeros((), dtype=torch.float32, device=self.device)
        n = 0
        for x, y in self.batches:
            with self.autocast():
                logits = module(x, subnet)
            correct += (logits.argmax(1) == y).sum()
            loss += F.cross_entropy(logits.float(), y, reduction="sum")
            n += len(y)
        self.evaluated += 1
        return 100.0 * correct.item() / n, loss.item() / n

    def score_with_loss(self, subnet: Subnet) -> tuple[float, float]:
        key = self.key(subnet)
        if key not in self.cache:
            self.cache[key] = self._evaluate(*key)  # the class representative, same function
        return self.cache[key]

    def score(self, subnets: Iterable[Subnet]) -> list[float]:
        """Top-1 accuracy (%) of each subnet; higher is better (the search objective)."""
        with gc_paused():
            return [self.score_with_loss(s)[0] for s in subnets]


@contextlib.contextmanager
def gc_paused():
    """No cyclic garbage collection while scoring: a forward pass allocates enough small
    objects to trigger collections that walk every module of the supernets (2-3% of scoring
    time) and frees no cycle (inference builds no autograd graph)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def score_many(scorer: SubnetScorer, subnets: Sequence[Subnet], *, done: dict | None = None,
               checkpoint: Callable[[dict], None] | None = None, every_seconds: float = 30.0,
               every_cells: int = 1000,
               rank: int = 0, world_size: int = 1, progress: bool = False) -> dict[str, dict]:
    """Score a list of subnets (this rank's shard), resuming from `done`
    ({text: {"top1", "loss"}}); `checkpoint(results)` is called every `every_seconds` or
    `every_cells` new results, whichever comes first."""
    space = scorer.space
    results = dict(done or {})
    for text, rec in results.items():  # previously scored classes need no second pass
        scorer.cache.setdefault(scorer.key(space.parse(text)), (rec["top1"], rec["loss"]))
    todo = [s for i, s in enumerate(subnets) if i % world_size == rank
            and space.format(s) not in results]
    bar = Progress(len(todo), desc="scoring", enabled=progress)
    last, since = time.time(), 0
    with gc_paused():
        for s in todo:
            top1, loss = scorer.score_with_loss(s)
            results[space.format(s)] = {"top1": top1, "loss": loss}
            bar.update(1)
            since += 1
            if checkpoint is not None and (since >= every_cells
                                           or time.time() - last > every_seconds):
                checkpoint(results)
                last, since = time.time(), 0
    bar.close()
    return results


def gather_results(results: dict, world_size: int) -> dict:
    """Union of every rank's results (all ranks receive it)."""
    if world_size == 1:
        return results
    import torch.distributed as dist

    parts: list = [None] * world_size
    dist.all_gather_object(parts, results)
    out: dict = {}
    for p in parts:
        out.update(p)
    return out


def scores_path_state(path: Path) -> dict:
    """Scores already written at `path` (for resuming), or {}."""
    import json

    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError:
        return {}
    return {k: {"top1": v, "loss": data.get("loss", {}).get(k, float("nan"))}
            for k, v in data.get("scores", {}).items()}
