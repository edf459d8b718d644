"""Glue from a RunConfig to the components: data -> space -> split -> supernets -> trainer ->
scorer -> search. The CLI calls these; each step reads and writes the run folder."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from efsnas.api.search_space import SearchSpace
from efsnas.api.split import Split
from efsnas.config import RunConfig, dump_config, load_run_config, scaled_lr
from efsnas.errors import UsageError
from efsnas.execution import Execution, resolve_execution
from efsnas.fileio import FolderLock, file_fingerprint
from efsnas.registry import create_criterion, create_space, lookup
from efsnas.sampling import create_sampler
from efsnas.supernets import FewShotSupernets
from efsnas.train.distributed import DistContext, init_distributed
from efsnas.train.trainer import SupernetTrainer

log = logging.getLogger("efsnas")


@dataclass
class Setup:
    cfg: RunConfig
    run_dir: Path
    data: object
    space: SearchSpace
    split: Split
    supernets: FewShotSupernets
    execution: Execution
    dist: DistContext

    @property
    def device(self) -> torch.device:
        return self.execution.device


def execution_for(cfg: RunConfig, space: SearchSpace, device: torch.device) -> Execution:
    t = cfg.train
    return resolve_execution(device, space, amp=t.amp, amp_dtype=t.amp_dtype,
                             channels_last=t.channels_last, cpu_allocator=t.cpu_allocator)


def load_data_for(cfg: RunConfig):
    from efsnas.data import load_data

    d = cfg.data
    return load_data(d.name, root=d.root, seed=cfg.train.seed, heldout=d.heldout,
                     heldout_per_class=d.heldout_per_class, image_size=d.image_size,
                     max_train=d.max_train, max_heldout=d.max_heldout)


def build_space(cfg: RunConfig, data) -> SearchSpace:
    s = cfg.space
    kwargs = dict(in_channels=data.in_channels, num_classes=data.num_classes,
                  input_size=s.input_size or data.image_size)
    if s.name == "nb201":
        kwargs.update(C=s.C, N=s.N)
    elif s.name == "mobilenet":
        kwargs.update(width_mult=s.width_mult)
    return create_space(s.name, **kwargs, **s.options)


def build_split(cfg: RunConfig, space: SearchSpace) -> Split:
    return lookup("criterion", cfg.split.criterion).from_config(cfg.split).split(space)


def supernet_structure(cfg: RunConfig, space: SearchSpace) -> str:
    """`split.structure`, or the space's default for the count split (separate otherwise)."""
    if cfg.split.structure:
        return cfg.split.structure
    return space.default_structure if cfg.split.criterion == "nonlinearity" else "separate"


def build_supernets(cfg: RunConfig, split: Split) -> FewShotSupernets:
    return FewShotSupernets(split, structure=supernet_structure(cfg, split.space),
                            thresholds=tuple(cfg.split.thresholds or ()) or None)


def prepare_run_dir(cfg: RunConfig, run_dir: Path, *, force: bool, is_main: bool = True) -> None:
    """Create the run folder and write the resolved config; refuse to mix configurations."""
    cfg_path = run_dir / "config.yaml"
    if is_main:
        # A folder whose run never reached its first checkpoint (a wrong data path, say) holds
        # nothing to protect: a corrected command may take it over.
        if cfg_path.exists() and not force and (run_dir / "checkpoint.pt").exists():
            old = load_run_config(run_dir)
            if old.training_identity() != cfg.training_identity():
                raise UsageError(
                    f"{run_dir} holds a run with another configuration; choose another --out, "
                    "or add --force to overwrite it"
                )
        if force and run_dir.exists():
            # everything computed from the old supernets goes with them
            for pattern in ("checkpoint.pt", "metrics.jsonl", "scores.json", "*.partial",
                            "result.json", "*-state.json", "verify.json", "verify.md",
                            "best_cell.*"):
                for path in run_dir.glob(pattern):
                    path.unlink()
            shutil.rmtree(run_dir / "warmup", ignore_errors=True)  # FS-NAS transfer's stage
        run_dir.mkdir(parents=True, exist_ok=True)
        cfg_path.write_text(dump_config(cfg))


def setup(cfg: RunConfig, *, force: bool = False) -> Setup:
    dist, device = init_distributed(cfg.train.device)
    run_dir = Path(cfg.out)
    if dist.is_main:
        FolderLock.acquire(run_dir)
    data = load_data_for(cfg)  # bad data paths fail before anything is written
    space = build_space(cfg, data)
    split = build_split(cfg, space)
    prepare_run_dir(cfg, run_dir, force=force, is_main=dist.is_main)
    dist.barrier()
    torch.manual_seed(cfg.train.seed)  # same initial weights on every rank and every rerun
    supernets = build_supernets(cfg, split)
    return Setup(cfg, run_dir, data, space, split, supernets, execution_for(cfg, space, device),
                 dist)


def build_trainer(cfg: RunConfig, supernets: FewShotSupernets, data, run_dir: Path,
                  execution: Execution, *, sampler: str, identity: dict,
                  tensorboard: bool | None = None,
                  dist: DistContext | None = None) -> SupernetTrainer:
    """A trainer for `supernets` with the config's recipe (also used by staged criteria)."""
    t = cfg.train
    scale = scaled_lr(1.0, t.lr_batch, t.batch_size, dist.world_size if dist else 1)
    return SupernetTrainer(
        supernets=supernets, sampler=create_sampler(sampler, supernets.split, seed=t.seed),
        data=data, run_dir=run_dir, identity=identity, epochs=t.epochs,
        batch_size=t.batch_size, lr=t.lr * scale, lr_min=t.lr_min * scale, momentum=t.momentum,
        nesterov=t.nesterov, weight_decay=t.weight_decay, wd_weights_only=t.wd_weights_only,
        label_smoothing=t.label_smoothing, grad_clip=t.grad_clip, zero_grad=t.zero_grad,
        seed=t.seed,
        steps_per_epoch=t.steps_per_epoch, execution=execution,
        augment=data.augment if cfg.data.augment else None,
        tensorboard=t.tensorboard if tensorboard is None else tensorboard, progress=t.progress,
        dist=dist)


def make_trainer(st: Setup) -> SupernetTrainer:
    return build_trainer(st.cfg, st.supernets, st.data, st.run_dir, st.execution,
                         sampler=st.cfg.train.sampler, identity=st.cfg.training_identity(),
                         dist=st.dist)


def transfer_warmup_epochs(cfg: RunConfig) -> int:
    """Epochs of one-shot warm-up an FS-NAS run with transfer starts from (0: none)."""
    if cfg.split.criterion != "fsnas" or not cfg.split.fsnas_transfer:
        return 0
    return max(0, min(cfg.split.fsnas_warmup_epochs, cfg.train.epochs - 1))


def warm_up_from_oneshot(cfg: RunConfig, supernets: FewShotSupernets, data, run_dir: Path,
                         execution: Execution, *, epochs: int,
                         dist: DistContext | None = None, log_fn=print) -> None:
    """FS-NAS transfer: train a one-shot supernet (its own resumable folder `run_dir`) for
    `epochs` of the full cosine schedule, then copy its weights into every supernet."""
    one = FewShotSupernets(create_criterion(
        "oneshot", width_divisor=supernets.split.width_divisor).split(supernets.space))
    identity = {**cfg.training_identity(), "stage": "one-shot warm-up"}
    trainer = build_trainer(cfg, one, data, run_dir, execution, sampler="uniform",
                            identity=identity, tensorboard=False, dist=dist)
    trainer.resume()
    if trainer.epoch < epochs:
        log_fn(f"FS-NAS transfer: one-shot warm-up for {epochs} epoch(s) in {run_dir}")
        trainer.fit(log=log_fn, until=epochs)
    state = one.supernet(0).state_dict()
    for k in range(len(supernets)):
        supernets.supernet(k).load_state_dict(state)


def train(st: Setup, *, log_fn=print) -> dict:
    """Train the supernets of the run (resuming from its checkpoint); returns a summary."""
    trainer = make_trainer(st)
    resumed = trainer.resume()
    warm = transfer_warmup_epochs(st.cfg)
    if not resumed and warm:
        warm_up_from_oneshot(st.cfg, st.supernets, st.data, st.run_dir / "warmup", st.execution,
                             epochs=warm, dist=st.dist,
                             log_fn=log_fn if st.dist.is_main else (lambda *a: None))
        trainer.epoch = warm  # the split supernets continue the one schedule
    if resumed and st.dist.is_main:
        log_fn(f"resuming from {trainer.checkpoint_path}: {trainer.epoch} epoch(s) and "
               f"{trainer.batch_in_epoch} step(s) done")
    if trainer.finished:
        if st.dist.is_main:
            log_fn(f"supernets already trained ({trainer.epochs} epochs) in {st.run_dir}")
        return {"epochs": trainer.epochs, "steps": trainer.step, "seconds": 0.0, "resumed": True}
    summary = trainer.fit(log=log_fn if st.dist.is_main else (lambda *a: None))
    return {**summary, "resumed": resumed}


def heldout_batches(st: Setup):
    return heldout_batches_for(st.cfg, st.data, st.execution)


def heldout_batches_for(cfg: RunConfig, data, execution: Execution):
    """The held-out scoring set, materialised once on the device."""
    ho = data.heldout
    if cfg.eval.max_images is not None and cfg.eval.max_images < len(ho):
        ho = ho.subset(range(cfg.eval.max_images))
    return ho.fixed_batches(cfg.eval.batch_size, device=execution.device,
                            channels_last=execution.channels_last)


def make_scorer(st: Setup):
    from efsnas.evaluate.scorer import SubnetScorer

    recal = None
    if st.cfg.eval.bn == "recalibrate":
        recal = []
        for i, b in enumerate(st.data.train.batches(st.cfg.eval.batch_size, shuffle=True,
                                                    seed=st.cfg.train.seed + 1, epoch=0,
                                                    augment=None, device=st.device,
                                                    channels_last=st.execution.channels_last)):
            if i >= st.cfg.eval.recal_batches:
                break
            recal.append(b)
    return SubnetScorer(st.supernets, heldout_batches(st), bn=st.cfg.eval.bn,
                        recal_batches=recal, execution=st.execution)


def describe_subnet(space: SearchSpace, subnet, **extra) -> dict:
    return {"cell": space.format(subnet), "nonlinearity_count": space.nonlinearity_count(subnet),
            "flops": space.flops(subnet), "params": space.params(subnet), **extra}


def read_metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    from efsnas.train.trainer import read_jsonl

    return read_jsonl(path)


def open_run(run_dir: str | Path, *, overrides: list[str] | None = None) -> Setup:
    """A trained run from its folder: its resolved config, data, and supernet weights."""
    from efsnas.train.checkpoint import check_identity, load_checkpoint, load_weights_into

    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir, overrides)
    dist, device = init_distributed(cfg.train.device)
    if dist.is_main:
        FolderLock.acquire(run_dir)
    torch.manual_seed(cfg.train.seed)
    ds = load_data_for(cfg)
    space = build_space(cfg, ds)
    split = build_split(cfg, space)
    supernets = build_supernets(cfg, split)
    path = run_dir / "checkpoint.pt"
    state = load_checkpoint(path)
    check_identity(state, cfg.training_identity(), path)  # not another seed's or width's
    load_weights_into(supernets, state["supernets"], path)
    if state["epoch"] < cfg.train.epochs and dist.is_main:
        log.warning("%s: supernets trained %d of %d epochs", run_dir, state["epoch"],
                    cfg.train.epochs)
    execution = execution_for(cfg, space, device)
    execution.module(supernets)
    return Setup(cfg, run_dir, ds, space, split, supernets, execution, dist)


def retrain_subnet(cfg: RunConfig, space: SearchSpace, data, subnet, *, seed: int,
                   device: torch.device, progress: bool = False,
                   weights: str | Path | None = None, dist: DistContext | None = None) -> dict:
    """Train `subnet` stand-alone with the retrain recipe; test (or held-out) top-1. With
    `weights`, the trained network's state_dict is saved there (efsnas.export.save_weights).
    Under torchrun (`dist`) every rank trains its share of each batch; all evaluate."""
    from efsnas.train.standalone import accuracy, train_network

    r = cfg.retrain
    torch.manual_seed(seed)
    net = space.build_network(subnet, dropout=r.dropout)
    train_set = data.train
    if r.max_train is not None and r.max_train < len(train_set):
        train_set = train_set.subset(range(r.max_train))
    execution = execution_for(cfg, space, device)
    scale = scaled_lr(1.0, r.lr_batch, r.batch_size, dist.world_size if dist else 1)
    summary = train_network(
        net, train_set, epochs=r.epochs, batch_size=r.batch_size, lr=r.lr * scale,
        lr_min=r.lr_min * scale,
        momentum=r.momentum, nesterov=r.nesterov, weight_decay=r.weight_decay,
        wd_weights_only=r.wd_weights_only, label_smoothing=r.label_smoothing,
        grad_clip=r.grad_clip, augment=data.augment if cfg.data.augment else None, seed=seed,
        execution=execution, progress=progress, dist=dist)
    evaluated = data.test if data.test is not None else data.heldout
    batches = evaluated.fixed_batches(cfg.eval.batch_size, device=device,
                                      channels_last=execution.channels_last)
    top1, loss = accuracy(net, batches, execution=execution)
    if weights is not None and (dist is None or dist.is_main):
        from efsnas.export import save_weights

        save_weights(net, weights)
    return {**describe_subnet(space, subnet), "seed": seed, "top1": top1, "loss": loss,
            "evaluated_on": "test" if data.test is not None else "heldout",
            "images": len(evaluated), **summary}


def search(st: Setup, scorer, *, truth: dict[str, float] | None = None, log_fn=print,
           name: str = "search") -> dict:
    """Search the space, each candidate scored by its own supernet; returns the result dict."""
    from efsnas.search import create_searcher, searcher_options

    s = st.cfg.search
    # The search's scores are valid for these weights and this scoring only; its state file is
    # named after everything it depends on, so new limits or retrained supernets start afresh.
    context = {"supernets": file_fingerprint(st.run_dir / "checkpoint.pt"),
               "eval": st.cfg.eval.model_dump()}
    settings = json.dumps([s.model_dump(), context], sort_keys=True)
    tag = hashlib.blake2b(settings.encode(), digest_size=4).hexdigest()
    kwargs = dict(space=st.space, seed=s.seed, top=s.top,
                  max_flops=s.max_flops * 1e6 if s.max_flops else None,
                  max_params=s.max_params * 1e6 if s.max_params else None,
                  checkpoint=st.run_dir / f"{name}-{s.strategy}-{tag}-state.json",
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
        rec = describe_subnet(st.space, c.subnet, supernet_estimate=c.score,
                              subspace=st.split.subspaces[st.split.route(c.subnet)].name)
        if truth and c.text in truth:
            rec.update(true_accuracy=truth[c.text], true_rank=rank[c.text])
        top.append(rec)
    return {"strategy": s.strategy, "evaluated": result.evaluated,
            "generations": result.generations, "forward_passes": scorer.evaluated,
            "best": top[0] if top else None, "top": top}


def _truth_ranks(truth: dict[str, float]) -> dict[str, int]:
    order = sorted(truth, key=lambda c: (-truth[c], c))
    return {c: i + 1 for i, c in enumerate(order)}
