"""The main job and the commands around it, at tiny scale on scikit-learn's digits."""

import json

import pytest

from efsnas import create_space
from efsnas.cli.main import main


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "tiny"
    assert main(["run", "--preset", "tiny", "--out", str(out)]) == 0
    return out


def test_run_writes_a_consistent_result(tiny_run):
    result = json.loads((tiny_run / "result.json").read_text())
    space = create_space("nb201", C=8, N=1, in_channels=1, num_classes=10, input_size=8)
    best = result["best"]
    cell = space.parse(best["cell"])
    assert space.is_valid(cell)
    assert best["flops"] == space.flops(cell) and best["params"] == space.params(cell)
    assert best["nonlinearity_count"] == space.nonlinearity_count(cell)
    # a top-1 over the 128 held-out images: a whole number of them
    assert best["supernet_estimate"] * 128 / 100 == pytest.approx(
        round(best["supernet_estimate"] * 128 / 100))
    scores = [t["supernet_estimate"] for t in result["top"]]
    assert scores == sorted(scores, reverse=True) and scores[0] == best["supernet_estimate"]
    for name in ("config.yaml", "metrics.jsonl", "checkpoint.pt", "best_cell.png",
                 "best_cell.svg"):
        assert (tiny_run / name).exists()
    assert "scikit-learn digits" in result["data"]


def test_predicted_accuracy_is_recomputable(tiny_run, tmp_path):
    """The best cell's score is the same when evaluated again from the saved run."""
    result = json.loads((tiny_run / "result.json").read_text())
    cells = tmp_path / "cells.json"
    cells.write_text(json.dumps([result["best"]["cell"]]))
    out = tmp_path / "scores.json"
    assert main(["evaluate", str(tiny_run), "--cells", str(cells), "--out", str(out),
                 "--no-progress"]) == 0
    scores = json.loads(out.read_text())["scores"]
    assert scores[result["best"]["cell"]] == pytest.approx(result["best"]["supernet_estimate"])


def test_rerun_resumes_instead_of_retraining(tiny_run, capsys):
    assert main(["run", "--preset", "tiny", "--out", str(tiny_run)]) == 0
    out = capsys.readouterr().out
    assert "already trained" in out and "retrained found" not in out  # verification reused
    assert "retrained finalist" not in out and "retrained reference" not in out  # finalists too
    result = json.loads((tiny_run / "result.json").read_text())
    assert len(result["finalists"]) == 3  # the reused trainings still make the table


def test_run_ends_with_a_verified_answer(tiny_run):
    result = json.loads((tiny_run / "result.json").read_text())
    v = result["verification"]
    space = create_space("nb201", C=8, N=1, in_channels=1, num_classes=10, input_size=8)
    roles = [r["role"] for r in v["rows"]]
    assert roles[0] == "found" and roles.count("random") == 2
    assert v["rows"][0]["cell"] == result["found"]["cell"] == result["pick"]  # the answer
    ref = space.format(space.reference_subnet())
    assert ("reference" in roles) == (space.canonical(space.reference_subnet())
                                      != space.canonical(space.parse(result["best"]["cell"])))
    assert all(r["cell"] != ref for r in v["rows"] if r["role"] == "random")
    randoms = [r["retrained_test_accuracy"]["mean"] for r in v["rows"] if r["role"] == "random"]
    assert v["random_median"] == pytest.approx(sum(randoms) / 2)
    assert v["found"] == v["rows"][0]["retrained_test_accuracy"]["mean"]
    assert v["beats_random_median"] == (v["found"] > v["random_median"])
    for r in v["rows"]:
        cell = space.parse(r["cell"])
        assert r["flops"] == space.flops(cell) and r["nonlinearity_count"] == (
            space.nonlinearity_count(cell))
        # one seed: no std, and the single run is the mean
        assert r["retrained_test_accuracy"]["std"] is None
        assert r["retrained_test_accuracy"]["runs"] == [r["retrained_test_accuracy"]["mean"]]
    assert "| found |" in (tiny_run / "verify.md").read_text()
    # the retrained weights are kept, so `efsnas export` ships them
    from efsnas.export import retrained_path

    found = space.parse(v["rows"][0]["cell"])
    assert retrained_path(tiny_run, space, found, seed=0).exists()


def test_the_answer_is_the_finalist_with_the_best_heldout_accuracy(tiny_run):
    result = json.loads((tiny_run / "result.json").read_text())
    fin = result["finalists"]
    # the search's top 3 by supernet estimate, each retrained on training images and tested
    # on held-out ones (digits has no test set; the held-out images are from its training set)
    assert [f["cell"] for f in fin] == [t["cell"] for t in result["top"][:3]]
    assert [f["supernet_rank"] for f in fin] == [1, 2, 3]
    for f in fin:
        assert {"subspace", "supernet_estimate", "heldout_accuracy", "picked"} <= set(f)
        assert f["heldout_images"] == 128 and f["epochs"] == 1
    assert sum(f["picked"] for f in fin) == 1
    picked = next(f for f in fin if f["picked"])
    assert picked["heldout_accuracy"] == max(f["heldout_accuracy"] for f in fin)
    assert result["pick"] == picked["cell"] == result["found"]["cell"]
    assert result["best"] == result["top"][0]  # the supernets' own top-1 stays in the result
    state = json.loads((tiny_run / "finalists.json").read_text())
    assert state["pick"] == picked["cell"] and len(state["runs"]) == 3
    text = (tiny_run / "verify.md").read_text()
    assert "Finalists: the search's top 3" in text and f"The answer is `{picked['cell']}`" in text
    assert f"{picked['heldout_accuracy']:.2f}% held-out" in text


def test_finalists_off_keeps_the_supernets_top1(tmp_path):
    out = tmp_path / "r"
    assert main(["run", "--preset", "tiny", "--out", str(out), "--set", "finalists.k=0",
                 "--workers", "1"]) == 0
    result = json.loads((out / "result.json").read_text())
    assert "finalists" not in result and "pick" not in result
    assert result["found"] == result["best"]
    assert result["verification"]["rows"][0]["cell"] == result["best"]["cell"]
    assert not (out / "finalists.json").exists()
    assert "Finalists" not in (out / "verify.md").read_text()


def test_workers_give_the_serial_retrainings(tmp_path):
    """The finalists' and the verification's retrainings on two single-thread workers (the
    reference and random cells beside the supernets' training) equal one worker's."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the serial run single-threaded too: the same arithmetic
    try:
        runs = {}
        for workers in ("1", "2"):
            out = tmp_path / f"w{workers}"
            assert main(["run", "--preset", "tiny", "--out", str(out), "--workers", workers,
                         "--set", "verify.seeds=2"]) == 0
            runs[workers] = json.loads((out / "result.json").read_text())
    finally:
        torch.set_num_threads(before)
    serial, pooled = runs["1"], runs["2"]
    assert serial["top"] == pooled["top"]
    assert serial["finalists"] == [{**f, "seconds": s["seconds"]} for f, s in
                                   zip(pooled["finalists"], serial["finalists"])]
    assert serial["pick"] == pooled["pick"]
    assert [(r["role"], r["cell"], r["retrained_test_accuracy"]) for r in
            serial["verification"]["rows"]] == [
        (r["role"], r["cell"], r["retrained_test_accuracy"]) for r in
        pooled["verification"]["rows"]]
    assert len(serial["verification"]["rows"][0]["retrained_test_accuracy"]["runs"]) == 2


def test_the_lone_found_cell_trains_on_this_process_threads(tmp_path):
    """With a pool, the references train on single-thread workers; the found cell, the last
    training left when there is one seed, trains here on this process's threads."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        out = tmp_path / "run"
        assert main(["run", "--preset", "tiny", "--out", str(out), "--workers", "2"]) == 0
    finally:
        torch.set_num_threads(before)
    found = json.loads((out / "result.json").read_text())["found"]["cell"]
    runs = json.loads((out / "verify.json").read_text())["runs"]
    assert runs.pop(f"{found}#0")["threads"] == 2
    assert len(runs) == 3 and all(r["threads"] == 1 for r in runs.values())


def test_search_with_flops_limit_and_ground_truth(tiny_run, tmp_path):
    space = create_space("nb201", C=8, N=1, in_channels=1, num_classes=10, input_size=8)
    truth = {space.format(c): float(sum(c)) for c in space.enumerate() if space.is_valid(c)}
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(truth))
    assert main(["search", str(tiny_run), "--max-flops", "0.1", "--ground-truth", str(gt),
                 "--name", "limited"]) == 0
    res = json.loads((tiny_run / "limited.json").read_text())
    assert all(t["flops"] <= 0.1e6 for t in res["top"])
    assert all("true_rank" in t for t in res["top"])


def test_retrain_the_found_cell(tiny_run, capsys):
    assert main(["retrain", str(tiny_run), "--set", "retrain.epochs=1"]) == 0
    rec = json.loads((tiny_run / "retrain.json").read_text())
    assert rec["cell"] == json.loads((tiny_run / "result.json").read_text())["found"]["cell"]
    assert rec["top1_mean"] == rec["runs"][0]["top1"] and rec["runs"][0]["epochs"] == 1
    assert rec["runs"][0]["evaluated_on"] == "heldout"  # digits has no test set
    # a run folder and a subnet, in either order
    cell = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"
    assert main(["retrain", cell, str(tiny_run), "--set", "retrain.epochs=1", "--force"]) == 0
    assert json.loads((tiny_run / "retrain.json").read_text())["cell"] == cell
    # precise BN before testing: the same weights (same seed), other running statistics
    plain = json.loads((tiny_run / "retrain.json").read_text())["runs"][0]
    assert main(["retrain", cell, str(tiny_run), "--set", "retrain.epochs=1", "--set",
                 "retrain.precise_bn=3", "--force"]) == 0
    precise = json.loads((tiny_run / "retrain.json").read_text())["runs"][0]
    assert precise["precise_bn_batches"] == 3 and "precise_bn_batches" not in plain
    assert precise["train_loss"] == plain["train_loss"] and precise["loss"] != plain["loss"]


@pytest.mark.parametrize("argv,needle", [
    (["run", "--preset", "nope"], "unknown preset"),
    (["run", "--preset", "tiny", "--set", "train.epochs=0"], "train.epochs"),
    (["run", "--preset", "tiny", "--set", "train.bogus=1"], "train.bogus"),
    (["run", "--preset", "tiny", "--set", "novalue"], "SECTION.KEY=VALUE"),
    (["run", "--config", "MISSING"], "does not exist"),
    (["run", "--preset", "tiny", "--data", "cifar10", "--data-root", "MISSING"],
     "missing does not exist"),
    (["run", "--preset", "tiny", "--data", "cifar10", "--data-root", "EMPTY"], "data_batch_1"),
    (["run", "--preset", "tiny", "--data", "imagenet99"], "imagenet99"),
    (["evaluate", "MISSING"], "not a run folder"),
    (["retrain", "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "--preset", "tiny"],
     "unknown operation"),
])
def test_bad_input_gives_one_line_and_exit_2(argv, needle, capsys, tmp_path):
    # paths under tmp_path only: a global path could exist on some machine
    places = {"EMPTY": str(tmp_path), "MISSING": str(tmp_path / "missing")}
    argv = [places.get(a, a) for a in argv]
    if "--out" not in argv and argv[0] in ("run", "retrain"):
        argv = [*argv, "--out", str(tmp_path / "x")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle.lower() in err.lower(), err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_bad_yaml_config(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train: [1, 2\n")
    assert main(["run", "--config", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "not valid YAML" in capsys.readouterr().err


def test_space_command_json(capsys, tmp_path, nb201_groups):
    out = tmp_path / "groups.json"
    assert main(["space", "nb201", "--json", "--groups-out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["disconnected"] == 341 and summary["equivalence_classes"] == 9445
    assert summary["per_subspace"] == {"count=0,1": 8764, "count=2": 5520, "count=3": 1000}
    assert json.loads(out.read_text()) == nb201_groups


def test_space_command_takes_the_options_a_space_declares(capsys):
    assert main(["space", "mobilenet", "--option", "width_mult=0.5", "--option",
                 "width_division=rounded", "--json", "--samples", "20"]) == 0
    space = json.loads(capsys.readouterr().out)["space"]
    assert space["width_mult"] == 0.5 and space["width_division"] == "rounded"
    assert main(["space", "mobilenet", "--json", "--samples", "20"]) == 0
    assert json.loads(capsys.readouterr().out)["space"]["width_mult"] == 1.0


def test_bad_override_of_a_saved_run_is_a_one_line_error(tiny_run, capsys):
    assert main(["retrain", str(tiny_run), "--set", "retrain.epochs=0"]) == 2
    err = capsys.readouterr().err
    assert "retrain.epochs" in err and err.count("\n") == 1


def test_missing_cuda_is_a_one_line_usage_error(capsys, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["run", "--preset", "tiny", "--device", "cuda", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert "CUDA is not available" in err and "\n" not in err and "Traceback" not in err


def test_retrain_with_run_applies_its_flags(tiny_run, tmp_path):
    out = tmp_path / "rt"
    assert main(["retrain", str(tiny_run), "--epochs", "2", "--set",
                 "retrain.batch_size=128", "--out", str(out)]) == 0
    rec = json.loads((out / "retrain.json").read_text())
    assert rec["recipe"]["epochs"] == 2 and rec["recipe"]["batch_size"] == 128
    assert rec["runs"][0]["epochs"] == 2
    assert main(["retrain", "--run", str(tiny_run), "--preset", "tiny"]) == 2
    assert main(["retrain", "--run", str(tiny_run), "--seeds", "0"]) == 2


def test_a_run_that_failed_before_training_does_not_block_the_corrected_one(tmp_path, capsys):
    out = str(tmp_path / "r")
    assert main(["run", "--preset", "tiny", "--data", "cifar10", "--data-root",
                 str(tmp_path / "missing"), "--out", out]) == 2
    assert main(["train", "--preset", "tiny", "--out", out, "--set",
                 "train.channels_last=off"]) == 0
    assert "channels_last: 'off'" in (tmp_path / "r" / "config.yaml").read_text()


def test_two_commands_on_one_run_folder_do_not_run_at_once(tmp_path, capsys):
    import fcntl

    out = tmp_path / "r"
    out.mkdir()
    with open(out / ".lock", "a+") as held:  # stands for another efsnas process
        held.write("pid 4242")
        held.flush()
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert main(["run", "--preset", "tiny", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert "in use by another efsnas command (pid 4242)" in err
        assert not (out / "config.yaml").exists()


def test_rerun_after_more_training_searches_afresh(tmp_path):
    out = tmp_path / "r"
    assert main(["run", "--preset", "tiny", "--out", str(out)]) == 0
    assert main(["run", "--preset", "tiny", "--out", str(out), "--epochs", "2"]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["train"]["epochs"] == 2
    assert result["forward_passes"] > 0  # scored with the new weights, not the old cache
    assert len(list(out.glob("search-evolution-*-state.json"))) == 2


def test_search_with_new_limits_starts_its_own_state(tiny_run, capsys):
    assert main(["search", str(tiny_run), "--max-flops", "0.3", "--name", "small"]) == 0
    res = json.loads((tiny_run / "small.json").read_text())
    assert res["best"]["flops"] <= 0.3e6
    for bad in ("result", "../x", "a/b", ".hidden"):
        assert main(["search", str(tiny_run), "--name", bad]) == 2
    assert "--name" in capsys.readouterr().err


def test_existing_files_are_kept_without_force(tiny_run, tmp_path, capsys):
    groups = tmp_path / "groups.json"
    groups.write_text("keep")
    assert main(["space", "nb201", "--groups-out", str(groups)]) == 2
    assert groups.read_text() == "keep"
    out = tmp_path / "rt"
    cell = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"
    assert main(["retrain", cell, "--preset", "tiny", "--out", str(out)]) == 0
    other = "|nor_conv_1x1~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"
    capsys.readouterr()
    assert main(["retrain", other, "--preset", "tiny", "--out", str(out)]) == 2
    assert "another subnet" in capsys.readouterr().err
    assert json.loads((out / "retrain.json").read_text())["cell"] == cell
