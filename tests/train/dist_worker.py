"""Run by torchrun in test_distributed.py: trains a few steps, then rank 0 writes what every
rank drew and the checksum of its weights."""

import copy
import gc
import json
import sys

import torch
import torch.distributed as dist

from efsnas.app import Run
from efsnas.app.config import load_config
from efsnas.app.stages import build_trainer
from efsnas.train.step import train_step

out = sys.argv[1]
cfg = load_config(preset="tiny", overrides=[f"out={out}/run", "train.epochs=1",
                                            "train.steps_per_epoch=3"])
st = Run.create(cfg)
trainer = build_trainer(st.cfg, st.supernets, st.data, st.run_dir, st.execution,
                        identity=st.cfg.training_identity(), dist=st.dist)
drawn = []
original = trainer.sampler.draw


def recording_draw(step):
    d = original(step)
    drawn.append([[k, list(c)] for k, c in d])
    return d


trainer.sampler.draw = recording_draw
trainer.fit(log=lambda *a: None)
checksum = float(sum(p.detach().double().sum() for p in st.supernets.parameters()))

# One more SBS step on a different half-batch per rank must equal a plain (no DDP) step on both
# halves: the gradient of every draw averaged across ranks exactly once.
reference = copy.deepcopy(st.supernets)
ref_opt = torch.optim.SGD(reference.parameters(), lr=0.1)
opt = torch.optim.SGD(st.supernets.parameters(), lr=0.1)
torch.manual_seed(123)  # the same full batch on every rank
x = torch.randn(2 * 8, 1, 8, 8)
y = torch.randint(0, 10, (2 * 8,))
mine = slice(8 * st.dist.rank, 8 * (st.dist.rank + 1))
draws = original(10_000)
train_step(trainer.modules, draws, x[mine], y[mine], opt)
ref_opt.zero_grad(set_to_none=True)
for k, cell in draws:  # BN normalises each rank's half on its own: so does the reference
    for half in (slice(0, 8), slice(8, 16)):
        loss = torch.nn.functional.cross_entropy(reference.supernet(k)(x[half], cell), y[half])
        (loss / 2).backward()
ref_opt.step()
matches = all(torch.allclose(p, q, atol=1e-6) for p, q in zip(st.supernets.parameters(),
                                                             reference.parameters()))
everything = [None] * st.dist.world_size
dist.all_gather_object(everything, {"rank": st.dist.rank, "draws": drawn, "checksum": checksum,
                                    "batches": trainer.steps_in_epoch(),
                                    "matches_single_process": matches,
                                    "structure": st.supernets.structure})
if st.dist.rank == 0:
    with open(f"{out}/ranks.json", "w") as f:
        json.dump(everything, f)
# DDP wrappers must go before the process group: module-level objects destroyed at interpreter
# exit, after destroy_process_group, abort the process ("terminate called without an active
# exception") in gloo's threads.
del trainer, st, reference
gc.collect()
dist.barrier()  # no rank leaves while another still talks to it
dist.destroy_process_group()
