"""A run: one RunConfig built once into data, space, split, supernets, how they execute, and the
run folder. `efsnas train`, `evaluate`, `search`, `retrain`, `run` and `compare` all work on one.

    run = Run.create(cfg)            # a new (or resumed) run: lock, data, space, split, folder
    run.train()                      # every stage of the criterion, resumable
    result = run.search(run.scorer())
    run = Run.open("runs/default")   # a trained run from its folder
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from efsnas.api.search_space import SearchSpace
from efsnas.api.split import Split, SplitCriterion
from efsnas.app.config import RunConfig, dump_config, load_run_config, scaled_lr
from efsnas.app.files import RunFiles
from efsnas.app.stages import load_criterion_state, train_supernets
from efsnas.errors import UsageError
from efsnas.execution import Execution, resolve_execution
from efsnas.fileio import FolderLock, file_fingerprint
from efsnas.registry import create_space, lookup
from efsnas.supernets import FewShotSupernets
from efsnas.train.distributed import DistContext, init_distributed

log = logging.getLogger("efsnas")


# ---- building blocks, each from the config ---------------------------------------------------

def load_data(cfg: RunConfig):
    """The configured dataset (`data` section), split into training and held-out images with the
    training seed."""
    from efsnas.data import load_data as _load

    d = cfg.data
    return _load(d.name, root=d.root, seed=cfg.train.seed, heldout=d.heldout,
                 heldout_per_class=d.heldout_per_class, image_size=d.image_size,
                 max_train=d.max_train, max_heldout=d.max_heldout)


def build_space(cfg: RunConfig, data) -> SearchSpace:
    """The configured space at the data's image size, channels and classes; its own options
    (NAS-Bench-201's C and N, MobileNet's width_mult, ...) come from `space.options`."""
    s = cfg.space
    return create_space(s.name, in_channels=data.in_channels, num_classes=data.num_classes,
                        input_size=s.input_size or data.image_size, **s.options)


def build_criterion(cfg: RunConfig) -> SplitCriterion:
    """The configured splitting criterion, built from its `split` config fields."""
    return lookup("criterion", cfg.split.criterion).from_config(cfg.split)


def supernet_structure(cfg: RunConfig, criterion: SplitCriterion, space: SearchSpace) -> str:
    """`split.structure`, or the criterion's default for the space."""
    return cfg.split.structure or criterion.default_structure(space)


def build_supernets(cfg: RunConfig, split: Split, criterion: SplitCriterion | None = None
                    ) -> FewShotSupernets:
    """Supernets over `split`, sharing weights as `split.structure` (or the criterion's default for
    the space) says."""
    criterion = criterion or build_criterion(cfg)
    return FewShotSupernets(split, structure=supernet_structure(cfg, criterion, split.space),
                            thresholds=tuple(cfg.split.thresholds or ()) or None)


def initial_supernets(cfg: RunConfig, criterion: SplitCriterion, space: SearchSpace,
                      files: RunFiles) -> FewShotSupernets:
    """The supernets training starts from, seeded (the same initial weights on every rank and
    every rerun), with what the criterion learned in `files` loaded first."""
    load_criterion_state(criterion, files)
    torch.manual_seed(cfg.train.seed)
    return build_supernets(cfg, criterion.initial_split(space), criterion)


def load_trained_supernets(cfg: RunConfig, space: SearchSpace, files: RunFiles,
                           criterion: SplitCriterion | None = None, *, warn: bool = False
                           ) -> FewShotSupernets:
    """The supernets of a trained run folder: the criterion's final split (from what it
    learned in `files`) with the checkpoint's weights, whose identity must be `cfg`'s."""
    from efsnas.train.checkpoint import check_identity, load_checkpoint, load_weights_into

    criterion = criterion or build_criterion(cfg)
    load_criterion_state(criterion, files)
    supernets = build_supernets(cfg, criterion.split(space), criterion)
    state = load_checkpoint(files.checkpoint)
    check_identity(state, cfg.training_identity(), files.checkpoint)
    load_weights_into(supernets, state["supernets"], files.checkpoint)
    if warn and state["epoch"] < cfg.train.epochs:
        log.warning("%s: supernets trained %d of %d epochs", files.root, state["epoch"],
                    cfg.train.epochs)
    return supernets


def execution_for(cfg: RunConfig, space: SearchSpace, device: torch.device) -> Execution:
    """How the run computes on `device`: mixed precision, memory format and CPU allocator from the
    `train` section."""
    t = cfg.train
    return resolve_execution(device, space, amp=t.amp, amp_dtype=t.amp_dtype,
                             channels_last=t.channels_last, cpu_allocator=t.cpu_allocator)


def heldout_batches_for(cfg: RunConfig, data, execution: Execution):
    """The held-out scoring set, materialised once on the device."""
    ho = data.heldout
    if cfg.eval.max_images is not None and cfg.eval.max_images < len(ho):
        ho = ho.subset(range(cfg.eval.max_images))
    return ho.fixed_batches(cfg.eval.batch_size, device=execution.device,
                            channels_last=execution.channels_last)


def recalibration_batches_for(cfg: RunConfig, data, execution: Execution):
    """The training batches that re-estimate BatchNorm statistics before a subnet is scored
    (`eval.bn: recalibrate`), the same ones for every subnet; None for other BN modes."""
    e = cfg.eval
    if e.bn != "recalibrate":
        return None
    batches = data.train.batches(e.batch_size, shuffle=True, seed=cfg.train.seed + 1, epoch=0,
                                 augment=None, device=execution.device,
                                 channels_last=execution.channels_last)
    return list(itertools.islice(batches, e.recal_batches))


def describe_subnet(space: SearchSpace, subnet, **extra) -> dict:
    """A subnet's cell text, nonlinearity count, FLOPs and parameters, JSON-ready, with `extra`
    fields added."""
    return {"cell": space.format(subnet), "nonlinearity_count": space.nonlinearity_count(subnet),
            "flops": space.flops(subnet), "params": space.params(subnet), **extra}


def prepare_run_dir(cfg: RunConfig, files: RunFiles, *, force: bool, is_main: bool = True
                    ) -> None:
    """Create the run folder and write the resolved config; refuse to mix configurations."""
    if not is_main:
        return
    # A folder whose run never reached its first checkpoint (a wrong data path, say) holds
    # nothing to protect: a corrected command may take it over.
    if files.config.exists() and not force and files.checkpoint.exists():
        old = load_run_config(files.root)
        if old.training_identity() != cfg.training_identity():
            raise UsageError(f"{files.root} holds a run with another configuration; choose "
                             "another --out, or add --force to overwrite it")
    if force and files.root.exists():
        files.clear_derived()  # everything computed from the old supernets goes with them
    files.root.mkdir(parents=True, exist_ok=True)
    files.config.write_text(dump_config(cfg))


# ---- the run ---------------------------------------------------------------------------------

@dataclass
class Run:
    """A run: its config, folder, data, space, criterion, supernets and execution, with the
    training, scoring and search steps that use them. Made by `Run.create` (to train) or
    `Run.open` (trained)."""

    cfg: RunConfig
    files: RunFiles
    data: object
    space: SearchSpace
    criterion: SplitCriterion
    supernets: FewShotSupernets
    execution: Execution
    dist: DistContext = field(default_factory=DistContext)

    @property
    def run_dir(self) -> Path:
        """The run folder."""
        return self.files.root

    @property
    def split(self) -> Split:
        """The split the supernets currently cover."""
        return self.supernets.split

    @property
    def device(self) -> torch.device:
        """The device the run computes on."""
        return self.execution.device

    @classmethod
    def create(cls, cfg: RunConfig, *, force: bool = False) -> Run:
        """A run to train (new, or resumed from its folder): data first, so a bad path fails
        before anything is written; the same initial weights on every rank and every rerun."""
        dist, device = init_distributed(cfg.train.device)
        files = RunFiles(cfg.out)
        if dist.is_main:
            FolderLock.acquire(files.root)
        data = load_data(cfg)
        space = build_space(cfg, data)
        criterion = build_criterion(cfg)
        prepare_run_dir(cfg, files, force=force, is_main=dist.is_main)
        dist.barrier()
        supernets = initial_supernets(cfg, criterion, space, files)
        execution = execution_for(cfg, space, device)
        return cls(cfg, files, data, space, criterion, execution.module(supernets), execution,
                   dist)

    @classmethod
    def open(cls, run_dir: str | Path, *, overrides: list[str] | None = None) -> Run:
        """A trained run from its folder: its resolved config, data, and supernet weights."""
        files = RunFiles(run_dir)
        cfg = load_run_config(files.root, overrides)
        dist, device = init_distributed(cfg.train.device)
        if dist.is_main:
            FolderLock.acquire(files.root)
        torch.manual_seed(cfg.train.seed)
        data = load_data(cfg)
        space = build_space(cfg, data)
        criterion = build_criterion(cfg)
        supernets = load_trained_supernets(cfg, space, files, criterion,
                                           warn=dist.is_main)
        execution = execution_for(cfg, space, device)
        return cls(cfg, files, data, space, criterion, execution.module(supernets), execution,
                   dist)

    # ---- training ----------------------------------------------------------------------------
    def train(self, *, log_fn=print) -> dict:
        """Train the supernets through every stage of the criterion (resuming); returns a
        summary. The run's supernets are the trained (final-stage) ones afterwards."""
        outcome = train_supernets(self.cfg, self.criterion, self.supernets, self.data,
                                  self.execution, self.files, dist=self.dist, log_fn=log_fn)
        self.supernets = outcome.supernets
        return outcome.summary

    # ---- scoring and search ------------------------------------------------------------------
    def heldout_batches(self):
        """The held-out scoring batches (`eval` section), materialised on the device."""
        return heldout_batches_for(self.cfg, self.data, self.execution)

    def scorer(self):
        """A SubnetScorer of the run's supernets on the held-out batches, with the configured batch
        norm mode."""
        from efsnas.evaluate.scorer import SubnetScorer

        return SubnetScorer(self.supernets, self.heldout_batches(), bn=self.cfg.eval.bn,
                            recal_batches=recalibration_batches_for(self.cfg, self.data,
                                                                    self.execution),
                            execution=self.execution)

    def search(self, scorer, *, truth: dict[str, float] | None = None, log_fn=print,
               name: str = "search") -> dict:
        """Search the space, each candidate scored by its own supernet; the result dict."""
        from efsnas.search import create_searcher, searcher_options

        s = self.cfg.search
        # The search's scores are valid for these weights and this scoring only; its state file
        # is named after everything it depends on, so new limits or retrained supernets start
        # afresh.
        context = {"supernets": file_fingerprint(self.files.checkpoint),
                   "eval": self.cfg.eval.model_dump()}
        settings = json.dumps([s.model_dump(), context], sort_keys=True)
        tag = hashlib.blake2b(settings.encode(), digest_size=4).hexdigest()
        kwargs = dict(space=self.space, seed=s.seed, top=s.top,
                      max_flops=s.max_flops * 1e6 if s.max_flops else None,
                      max_params=s.max_params * 1e6 if s.max_params else None,
                      checkpoint=self.files.search_state(name, s.strategy, tag),
                      equivalence=scorer.key, context=context)
        # the strategy's own settings, by the names its constructor takes
        own = set(searcher_options(s.strategy)) - set(kwargs)
        kwargs.update({k: v for k, v in s.model_dump().items() if k in own})
        searcher = create_searcher(s.strategy, **kwargs)

        def on_generation(info: dict) -> None:
            log_fn(f"search generation {info['generation']}: best {info['best']:.2f}, "
                   f"evaluated {info.get('evaluated', '?')}")

        result = searcher.run(scorer.score, on_generation=on_generation)
        rank = _truth_ranks(truth) if truth else {}
        top = []
        for c in result.top:
            rec = describe_subnet(self.space, c.subnet, supernet_estimate=c.score,
                                  subspace=self.split.subspaces[self.split.route(c.subnet)].name)
            if truth and c.text in truth:
                rec.update(true_accuracy=truth[c.text], true_rank=rank[c.text])
            top.append(rec)
        return {"strategy": s.strategy, "evaluated": result.evaluated,
                "generations": result.generations, "forward_passes": scorer.evaluated,
                "best": top[0] if top else None, "top": top}

    def retrain(self, subnet, *, seed: int, cfg: RunConfig | None = None, **kwargs) -> dict:
        """`retrain_subnet` with this run's data, space and execution (`cfg` overrides the
        recipe, e.g. the verification's)."""
        return retrain_subnet(cfg or self.cfg, self.space, self.data, subnet, seed=seed,
                              execution=self.execution, dist=self.dist, **kwargs)


def retrain_subnet(cfg: RunConfig, space: SearchSpace, data, subnet, *, seed: int,
                   execution: Execution, progress: bool = False,
                   weights: str | Path | None = None, dist: DistContext | None = None,
                   evaluate: str = "test") -> dict:
    """Train `subnet` stand-alone with the retrain recipe; test (or held-out) top-1, or with
    `evaluate="heldout"` the held-out top-1 (choosing among subnets must not see the test
    set). With `weights`, the trained network's state_dict is saved there
    (efsnas.export.save_weights). Under torchrun (`dist`) every rank trains its share of each
    batch; all evaluate."""
    from efsnas.train.standalone import accuracy, precise_bn, train_network

    r = cfg.retrain
    torch.manual_seed(seed)
    net = space.build_network(subnet, dropout=r.dropout)
    train_set = data.train
    if r.max_train is not None and r.max_train < len(train_set):
        train_set = train_set.subset(range(r.max_train))
    scale = scaled_lr(1.0, r.lr_batch, r.batch_size, dist.world_size if dist else 1)
    summary = train_network(
        net, train_set, epochs=r.epochs, batch_size=r.batch_size, lr=r.lr * scale,
        lr_min=r.lr_min * scale, momentum=r.momentum, nesterov=r.nesterov,
        weight_decay=r.weight_decay, wd_weights_only=r.wd_weights_only,
        label_smoothing=r.label_smoothing, grad_clip=r.grad_clip,
        augment=data.augment if cfg.data.augment else None, seed=seed, execution=execution,
        progress=progress, dist=dist)
    if r.precise_bn:
        # the same batches on every rank (not a shard), so every rank gets the same statistics
        model = getattr(net, "module", net)
        precise_bn(model, itertools.islice(train_set.batches(
            r.batch_size, shuffle=True, seed=seed + 7919, augment=None,
            device=execution.device, channels_last=execution.channels_last), r.precise_bn),
            execution=execution)
        summary["precise_bn_batches"] = r.precise_bn
    on_test = evaluate == "test" and data.test is not None
    evaluated = data.test if on_test else data.heldout
    batches = evaluated.fixed_batches(cfg.eval.batch_size, device=execution.device,
                                      channels_last=execution.channels_last)
    top1, loss = accuracy(net, batches, execution=execution)
    if weights is not None and (dist is None or dist.is_main):
        from efsnas.export import save_weights

        save_weights(net, weights)
    return {**describe_subnet(space, subnet), "seed": seed, "top1": top1, "loss": loss,
            "evaluated_on": "test" if on_test else "heldout",
            "images": len(evaluated), **summary,
            # sums over threads round differently: what a result's arithmetic was
            **({"threads": torch.get_num_threads()} if execution.device.type == "cpu" else {})}


def _truth_ranks(truth: dict[str, float]) -> dict[str, int]:
    order = sorted(truth, key=lambda c: (-truth[c], c))
    return {c: i + 1 for i, c in enumerate(order)}
