"""The MobileNet space end to end on a tiny ImageFolder: train, search under FLOPs, retrain."""

import json
import random

import numpy as np
import pytest
from PIL import Image

from efsnas import create_space
from efsnas.cli.main import main


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for k, name in enumerate(["ant", "bee", "cat"]):
        (root / name).mkdir()
        for i in range(12):
            base = np.zeros((32, 32, 3), np.uint8)
            base[..., k] = 180  # a colour per class, plus noise
            img = np.clip(base + rng.integers(0, 60, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(root / name / f"{i}.png")
    return root


def test_toy_imagenet_pipeline(image_folder, tmp_path, capsys):
    space = create_space("mobilenet", width_mult=0.25, input_size=32, num_classes=3)
    rng = random.Random(0)
    limit = sorted(space.flops(space.sample(rng)) for _ in range(200))[100] / 1e6  # median
    out = tmp_path / "run"
    common = ["--preset", "imagenet", "--out", str(out), "--data-root", str(image_folder),
              "--set", "space.width_mult=0.25", "--set", "space.input_size=32",
              "--set", "data.heldout_per_class=2", "--set", "data.image_size=32",
              "--set", "train.epochs=2", "--set", "train.batch_size=8",
              "--set", "train.steps_per_epoch=2", "--set", "eval.batch_size=6",
              "--set", "eval.recal_batches=2", "--set", "search.population=8",
              "--set", "search.generations=2", "--set", "search.mutations=3",
              "--set", "search.crossovers=3", "--set", "search.topk=3",
              "--set", f"search.max_flops={limit}", "--set", "train.progress=false"]
    assert main(["run", *common]) == 0
    result = json.loads((out / "result.json").read_text())
    assert len(result["supernets"]["supernets"]) == 6  # K=6 half-width supernets
    assert result["supernets"]["split"]["width_divisor"] == 2
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(v is not None for v in metrics[0]["loss"])  # SBS trained all six every epoch
    for top in result["top"]:
        s = space.parse(top["cell"])
        assert space.is_valid(s) and top["flops"] == space.flops(s) <= limit * 1e6
    # a cell list with an invalid network (identity at a stage's first layer): skipped with a
    # note; a list of only invalid ones is a usage error
    found = result["found"]["cell"]
    bad = "-".join(["skip", *found.split("-")[1:]])
    assert not space.is_valid(space.parse(bad))
    cells, scores = tmp_path / "cells.json", tmp_path / "scores.json"
    cells.write_text(json.dumps([bad, found]))
    capsys.readouterr()
    assert main(["evaluate", str(out), "--cells", str(cells), "--out", str(scores),
                 "--no-progress"]) == 0
    assert "skipped 1 subnet" in capsys.readouterr().err
    assert list(json.loads(scores.read_text())["scores"]) == [found]
    cells.write_text(json.dumps([bad]))
    assert main(["evaluate", str(out), "--cells", str(cells), "--out", str(tmp_path / "s2.json"),
                 "--no-progress"]) == 2
    assert "no valid mobilenet subnet" in capsys.readouterr().err
    assert main(["retrain", str(out), "--set", "retrain.epochs=1",
                 "--set", "retrain.batch_size=8"]) == 0
    re = json.loads((out / "retrain.json").read_text())
    assert re["cell"] == result["found"]["cell"] and re["top1_mean"] == re["runs"][0]["top1"]
    assert re["runs"][0]["params"] == space.params(space.parse(re["cell"]))


def test_mobilenet_cpu_preset_verifies_within_its_flops_limit(image_folder, tmp_path):
    """The CPU-scale main job: nested supernets, a search under the preset's FLOPs limit, and
    a verification whose reference and random networks are within the same limit."""
    out = tmp_path / "cpu"
    assert main(["run", "--preset", "mobilenet-cpu", "--out", str(out), "--data", "imagefolder",
                 "--data-root", str(image_folder), "--set", "data.max_heldout=6",
                 "--set", "train.epochs=1", "--set", "train.batch_size=8",
                 "--set", "train.steps_per_epoch=2", "--set", "eval.batch_size=6",
                 "--set", "eval.recal_batches=1", "--set", "search.population=6",
                 "--set", "search.generations=1", "--set", "search.topk=2",
                 "--set", "search.mutations=2", "--set", "search.crossovers=2",
                 "--set", "retrain.epochs=1", "--set", "retrain.batch_size=8",
                 "--set", "verify.random_subnets=2", "--set", "train.progress=false"]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["supernets"]["supernets"][0]["op_weights"] == "nested"
    limit = 1.0e6  # the preset's search.max_flops, in FLOPs
    rows = result["verification"]["rows"]
    assert [r["role"] for r in rows] == ["found", "reference", "random", "random"] or \
        [r["role"] for r in rows] == ["found", "random", "random"]  # the found one may be it
    assert all(r["flops"] <= limit for r in rows)
    ref = [r for r in rows if r["role"] == "reference"]
    space = create_space("mobilenet", width_mult=0.25, input_size=32, num_classes=3)
    assert not ref or ref[0]["cell"] == space.format(space.reference_subnet(max_flops=limit))
    assert (out / "best_cell.png").stat().st_size > 0


def test_mobilenet_ground_truth_and_compare_with_recalibrated_bn(image_folder, tmp_path):
    """The MobileNet ranking study's two commands at toy size: the supernets' BatchNorm is
    re-estimated on training batches before each subnet is scored (eval.bn: recalibrate)."""
    tiny = ["--preset", "mobilenet-cpu", "--data", "imagefolder", "--data-root",
            str(image_folder), "--set", "data.max_heldout=6", "--set", "retrain.epochs=1",
            "--set", "retrain.batch_size=8", "--set", "eval.batch_size=6",
            "--set", "eval.recal_batches=2", "--workers", "1"]
    gt = tmp_path / "gt.json"
    assert main(["groundtruth", "build", str(gt), "--per-subspace", "1", "--seeds", "1",
                 "--max-flops", "0.9", *tiny]) == 0
    truth = json.loads(gt.read_text())
    assert len(truth) == 6  # one architecture from each of K=6 subspaces
    space = create_space("mobilenet", width_mult=0.25, input_size=32, num_classes=3)
    assert all(space.flops(space.parse(c)) <= 0.9e6 for c in truth)  # as the search sees them
    meta = json.loads(gt.with_name("gt.meta.json").read_text())
    assert meta["sample"] == {"seed": 0, "max_flops": 0.9}
    out = tmp_path / "cmp"
    assert main(["compare", "--ground-truth", str(gt), "--cells",
                 str(gt.with_name("gt.cells.json")), "--criteria", "oneshot,nonlinearity",
                 "--seeds", "1", "--out", str(out), *tiny, "--set", "train.epochs=1",
                 "--set", "train.batch_size=8", "--set", "train.steps_per_epoch=2",
                 "--set", "finalists.k=0", "--set", "train.progress=false"]) == 0
    table = json.loads((out / "compare.json").read_text())
    for name in ("oneshot", "nonlinearity"):
        (run,) = table["runs"][name]
        assert run["images_drawn"] > 0 and run["subnet_passes"] == (2 if name == "oneshot"
                                                                    else 12)
    scores = json.loads(next(out.glob("**/nonlinearity*/**/scores.json")).read_text())
    assert len(scores["scores"]) == 6
