"""Trainer: checkpoints, resume after a kill, refusal of foreign checkpoints."""

import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from efsnas.cli.main import main
from efsnas.errors import CheckpointError
from efsnas.train.checkpoint import load_checkpoint, save_atomic

TINY = ["--preset", "tiny", "--set", "train.epochs=3", "--set", "train.steps_per_epoch=6"]


def _weights(run_dir):
    return load_checkpoint(run_dir / "checkpoint.pt")["supernets"]


def test_resume_after_kill_gives_the_uninterrupted_weights(tmp_path):
    full, killed = tmp_path / "full", tmp_path / "killed"
    assert main(["train", *TINY, "--out", str(full)]) == 0
    # The same command, killed with SIGTERM once the first epoch's checkpoint exists.
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "efsnas", "train", *TINY, "--out", str(killed),
           "--set", "train.steps_per_epoch=6"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    for line in proc.stdout:
        if line.startswith("epoch 1/3"):
            proc.send_signal(signal.SIGTERM)
            break
    rest = proc.stdout.read()
    assert proc.wait(timeout=120) == 130, rest
    assert "rerun the same command to resume" in rest
    state = load_checkpoint(killed / "checkpoint.pt")
    assert 1 <= state["epoch"] < 3
    assert main(["train", *TINY, "--out", str(killed)]) == 0
    a, b = _weights(full), _weights(killed)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    epochs = [int(line.split('"epoch": ')[1].split(",")[0])
              for line in (killed / "metrics.jsonl").read_text().splitlines()]
    assert epochs == sorted(set(epochs)) and epochs[-1] == 3


def test_other_configuration_is_refused_and_force_overwrites(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--out", str(out)]) == 0
    assert main(["train", "--preset", "tiny", "--out", str(out), "--set", "train.lr=0.1"]) == 2
    err = capsys.readouterr().err
    assert "another configuration" in err and "--force" in err and "\n" == err[-1]
    assert err.count("\n") == 1
    assert main(["train", "--preset", "tiny", "--out", str(out), "--set", "train.lr=0.1",
                 "--force"]) == 0


def test_corrupted_checkpoint_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--out", str(out)]) == 0
    ckpt = out / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:200])
    assert main(["train", "--preset", "tiny", "--out", str(out), "--epochs", "2"]) == 2
    assert "corrupted" in capsys.readouterr().err


def test_checkpoint_of_another_space_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--out", str(out)]) == 0
    # Same folder, config file edited by hand to another width: the checkpoint must not load.
    cfg = (out / "config.yaml").read_text().replace("C: 8", "C: 12")
    (out / "config.yaml").write_text(cfg)
    assert main(["train", "--preset", "tiny", "--out", str(out), "--set", "space.C=12"]) == 2
    assert "another configuration" in capsys.readouterr().err


def test_atomic_save_leaves_old_file_when_interrupted(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    save_atomic({"format": "efsnas-checkpoint", "x": torch.ones(3)}, path)

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        save_atomic({"format": "efsnas-checkpoint", "x": torch.zeros(3)}, path)
    assert torch.equal(load_checkpoint(path)["x"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary file left


def test_hostile_checkpoint_is_not_executed(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"format": "efsnas-checkpoint", "x": Evil()}, f)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("overrides,needle", [
    (["data.max_train=20", "train.batch_size=32"], "no training step"),
    (["train.lr=.inf"], "loss became"),
])
def test_training_that_cannot_learn_stops_with_one_line(tmp_path, capsys, overrides, needle):
    sets = [a for o in overrides for a in ("--set", o)]
    code = main(["run", "--preset", "tiny", "--out", str(tmp_path / "r"), *sets])
    err = capsys.readouterr().err
    assert code == 1 and needle in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "r" / "result.json").exists()


def test_fsnas_transfer_in_train_warms_up_one_shot_first(tmp_path):
    out = tmp_path / "fs"
    assert main(["train", "--preset", "tiny", "--criterion", "fsnas", "--epochs", "3", "--out",
                 str(out), "--set", "split.fsnas_transfer=true",
                 "--set", "split.fsnas_warmup_epochs=2"]) == 0
    warm = [json.loads(x)["epoch"] for x in (out / "stage0" / "metrics.jsonl").read_text()
            .splitlines()]
    rest = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert warm == [1, 2] and [r["epoch"] for r in rest] == [3]  # one schedule, split at 2
    assert len(rest[0]["loss"]) == 5  # five FS-NAS supernets after the warm-up
    state = load_checkpoint(out / "checkpoint.pt")
    one = load_checkpoint(out / "stage0" / "checkpoint.pt")["supernets"]
    # every sub-supernet started from the one-shot weights: the operations no subnet of the
    # last epoch touched (no decay reaches them) still hold exactly the one-shot's values
    one = {k.removeprefix("supernets.0."): v for k, v in one.items()}
    for k in range(5):
        mine = {n.removeprefix(f"supernets.{k}."): v for n, v in state["supernets"].items()
                if n.startswith(f"supernets.{k}.")}
        assert mine.keys() == one.keys()
        same = [n for n in one if torch.equal(mine[n], one[n])]
        assert 0 < len(same) < len(one), k


def test_a_half_written_metrics_line_does_not_stop_a_resume(tmp_path):
    out = tmp_path / "r"
    assert main(["train", "--preset", "tiny", "--out", str(out)]) == 0
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 2, "loss": [0.')  # a kill during the append
    assert main(["train", "--preset", "tiny", "--out", str(out), "--epochs", "2"]) == 0
    epochs = [json.loads(x)["epoch"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]


def test_gmnas_trains_in_stages_reopens_and_resumes(tmp_path, capsys):
    """A staged criterion under `efsnas train`: one-shot, split into 2 at epoch 1, each split
    again at epoch 2; the learned split is saved, so search reopens the 4 supernets and a rerun
    has nothing left to do."""
    out = tmp_path / "gm"
    args = ["train", "--preset", "tiny", "--criterion", "gmnas", "--epochs", "3", "--out",
            str(out), "--set", "split.gm_warmup_epochs=[1,2]", "--set", "split.gm_samples=1"]
    assert main(args) == 0
    state = json.loads((out / "split-state.json").read_text())
    assert len(state["decisions"]) == 3  # 1 -> 2 -> 4 subspaces
    assert [json.loads(x)["epoch"] for x in (out / "stage0" / "metrics.jsonl").read_text()
            .splitlines()] == [1]
    assert [json.loads(x)["epoch"] for x in (out / "stage1" / "metrics.jsonl").read_text()
            .splitlines()] == [2]
    final = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in final] == [3] and len(final[0]["loss"]) == 4
    before = (out / "checkpoint.pt").read_bytes()
    capsys.readouterr()
    assert main(args) == 0
    assert "already trained" in capsys.readouterr().out
    assert (out / "checkpoint.pt").read_bytes() == before
    assert main(["search", str(out)]) == 0
    result = json.loads((out / "search.json").read_text())
    subspaces = {r["subspace"] for r in result["top"]}
    assert subspaces and all(s.startswith("pos") for s in subspaces)  # GM-NAS's own subspaces


@pytest.mark.parametrize("sampler", ["sbs", "uniform"])
def test_metrics_say_how_each_epoch_shared_out_its_images(tmp_path, sampler):
    out = tmp_path / sampler
    assert main(["train", *TINY, "--sampler", sampler, "--set", "train.batch_size=16",
                 "--out", str(out)]) == 0
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 3
    for r in records:
        shares = r["images_per_supernet"]
        assert len(shares) == len(r["loss"]) == 3
        if sampler == "sbs":  # a subnet of every supernet on every batch
            assert shares == [6 * 16] * 3
        else:  # one subnet a step, each routed to its own supernet
            assert sum(shares) == 6 * 16 and all(s % 16 == 0 for s in shares)
            assert [lo is None for lo in r["loss"]] == [s == 0 for s in shares]


def test_a_fresh_start_drops_the_metrics_of_a_run_whose_checkpoint_is_gone(tmp_path):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    (out / "checkpoint.pt").unlink()  # e.g. a run folder committed without its checkpoint
    assert main(["train", *TINY, "--out", str(out)]) == 0
    epochs = [json.loads(x)["epoch"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]
