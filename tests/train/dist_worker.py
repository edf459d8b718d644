"""Run by torchrun in test_distributed.py: trains a few steps, then rank 0 writes what every
rank drew and the checksum of its weights."""

import gc
import json
import sys

import torch.distributed as dist

from efsnas import pipeline
from efsnas.config import load_config

out = sys.argv[1]
cfg = load_config(preset="tiny", overrides=[f"out={out}/run", "train.epochs=1",
                                            "train.steps_per_epoch=3"])
st = pipeline.setup(cfg)
trainer = pipeline.make_trainer(st)
drawn = []
original = trainer.sampler.draw


def recording_draw(step):
    d = original(step)
    drawn.append([[k, list(c)] for k, c in d])
    return d


trainer.sampler.draw = recording_draw
trainer.fit(log=lambda *a: None)
checksum = float(sum(p.detach().double().sum() for p in st.supernets.parameters()))
everything = [None] * st.dist.world_size
dist.all_gather_object(everything, {"rank": st.dist.rank, "draws": drawn, "checksum": checksum,
                                    "batches": trainer.steps_in_epoch()})
if st.dist.rank == 0:
    with open(f"{out}/ranks.json", "w") as f:
        json.dump(everything, f)
# DDP wrappers must go before the process group: module-level objects destroyed at interpreter
# exit, after destroy_process_group, abort the process ("terminate called without an active
# exception") in gloo's threads.
del trainer, st
gc.collect()
dist.barrier()  # no rank leaves while another still talks to it
dist.destroy_process_group()
