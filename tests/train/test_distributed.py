"""The distributed path on CPU: torchrun, gloo, 2 processes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("dist_worker.py")


def _torchrun(*args, timeout=300):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", "0", "--rdzv_backend", "c10d", "--rdzv_endpoint", "localhost:0",
           *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_two_ranks_train_the_same_subnets_and_end_with_the_same_weights(tmp_path):
    r = _torchrun(str(WORKER), str(tmp_path))
    assert r.returncode == 0, r.stderr[-3000:]
    ranks = json.loads((tmp_path / "ranks.json").read_text())
    assert [x["rank"] for x in ranks] == [0, 1]
    assert ranks[0]["draws"] == ranks[1]["draws"] and len(ranks[0]["draws"]) == 3
    assert all(len(d) == 3 for d in ranks[0]["draws"])  # SBS: one subnet per supernet
    assert ranks[0]["checksum"] == pytest.approx(ranks[1]["checksum"], rel=0, abs=1e-9)
    # the tiny preset's default structure is shared: one DDP module runs all three draws
    assert ranks[0]["structure"] == "shared_prefix"
    assert ranks[0]["matches_single_process"] and ranks[1]["matches_single_process"]


@pytest.mark.slow
def test_efsnas_train_under_torchrun(tmp_path):
    r = _torchrun("-m", "efsnas", "train", "--preset", "tiny", "--out", str(tmp_path / "run"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "run" / "checkpoint.pt").exists()
    assert (tmp_path / "run" / "metrics.jsonl").read_text().count("\n") == 1


@pytest.mark.slow
def test_retrain_under_torchrun(tmp_path):
    cell = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"
    r = _torchrun("-m", "efsnas", "retrain", cell, "--preset", "tiny", "--out", str(tmp_path),
                  "--set", "retrain.epochs=1", "--set", "retrain.batch_size=32")
    assert r.returncode == 0, r.stderr[-3000:]
    rec = json.loads((tmp_path / "retrain.json").read_text())
    assert rec["cell"] == cell and len(rec["runs"]) == 1
    assert Path(rec["runs"][0]["weights"]).exists()
    assert r.stdout.count("top-1") == 1  # one report, from rank 0


def test_lr_scales_with_the_global_batch():
    from efsnas.app.config import scaled_lr

    assert scaled_lr(0.5, 1024, 128, 8) == 0.5  # the authors' 8 x 128
    assert scaled_lr(0.5, 1024, 128, 1) == 0.0625
    assert scaled_lr(0.5, None, 128, 1) == 0.5
