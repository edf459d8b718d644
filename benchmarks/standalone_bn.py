"""How much of a stand-alone training's test top-1 is its BatchNorm running statistics.

Retrains cells with a ground truth's recipe (the mobilenet_study.sh settings by default), then
tests each network twice: as trained (running statistics, BN momentum 0.1), and after "precise
BN" (the running statistics re-estimated as a cumulative average over N training batches without
augmentation, weights unchanged). If the two differ by much, part of the ground truth's seed
noise is evaluation noise that re-estimating the statistics removes.

    OMP_NUM_THREADS=1 python benchmarks/standalone_bn.py --cells CELL[,CELL] --seeds 0,1 \
        --out benchmarks/results/standalone_bn.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import torch

# the MobileNet ground truth's recipe (benchmarks/results/mobilenet_study.sh, pilot 4)
STUDY = ["retrain.epochs=4", "data.max_train=15000", "space.stem_stride=1",
         "search.max_flops=4.0"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="mobilenet-cpu")
    p.add_argument("--set", action="append", default=None, metavar="KEY=VALUE",
                   help="recipe overrides (default: the MobileNet study's)")
    p.add_argument("--cells", required=True, help="comma-separated cells")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--batches", type=int, default=50, help="training batches for precise BN")
    p.add_argument("--out", default="benchmarks/results/standalone_bn.json")
    a = p.parse_args()

    from efsnas.app.config import load_config
    from efsnas.app.run import build_space, execution_for, load_data, retrain_subnet
    from efsnas.export import load_weights
    from efsnas.train.standalone import accuracy, precise_bn

    cfg = load_config(preset=a.preset, overrides=STUDY if a.set is None else a.set)
    data = load_data(cfg)
    space = build_space(cfg, data)
    execution = execution_for(cfg, space, torch.device("cpu"))
    test = data.test.fixed_batches(cfg.eval.batch_size, device=execution.device,
                                   channels_last=execution.channels_last)
    recal = list(itertools.islice(data.train.batches(
        cfg.retrain.batch_size, shuffle=True, seed=12345, augment=None,
        channels_last=execution.channels_last), a.batches))
    out = Path(a.out)
    rows = json.loads(out.read_text())["rows"] if out.exists() else []
    done = {(r["cell"], r["seed"]) for r in rows}
    tmp = out.with_suffix(".weights.pt")
    for cell, seed in itertools.product(a.cells.split(","), map(int, a.seeds.split(","))):
        if (cell, seed) in done:
            continue
        t0 = time.perf_counter()
        subnet = space.parse(cell)
        rec = retrain_subnet(cfg, space, data, subnet, seed=seed, execution=execution,
                             weights=tmp)
        net = space.build_network(subnet)
        load_weights(net, tmp)
        if execution.channels_last:
            net = net.to(memory_format=torch.channels_last)
        as_trained, _ = accuracy(net, test, execution=execution)
        precise_bn(net, recal, execution=execution)
        precise, loss = accuracy(net, test, execution=execution)
        rows.append({"cell": cell, "seed": seed, "top1": rec["top1"],
                     "top1_reloaded": as_trained, "top1_precise_bn": precise,
                     "loss_precise_bn": loss, "train_loss": rec["train_loss"],
                     "seconds": time.perf_counter() - t0})
        print(json.dumps(rows[-1]), flush=True)
        out.write_text(json.dumps({"preset": a.preset, "set": STUDY if a.set is None else a.set,
                                   "precise_bn_batches": a.batches, "rows": rows}, indent=1))
    tmp.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
