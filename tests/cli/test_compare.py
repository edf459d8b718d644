"""`efsnas groundtruth build` and `efsnas compare` at a tiny scale on digits."""

import json

import pytest
from scipy.stats import kendalltau

from efsnas.cli.main import main

TINY = ["--preset", "tiny", "--set", "retrain.epochs=1", "--set", "retrain.batch_size=64"]


@pytest.fixture(scope="module")
def ground_truth(tmp_path_factory):
    out = tmp_path_factory.mktemp("gt") / "gt.json"
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # serial and single-threaded: the pooled test's reference
    try:
        assert main(["groundtruth", "build", str(out), "--per-subspace", "3", "--seeds", "2",
                     "--workers", "1", *TINY]) == 0
    finally:
        torch.set_num_threads(before)
    return out


def test_ground_truth_builder(ground_truth):
    gt = json.loads(ground_truth.read_text())
    runs = json.loads(ground_truth.with_name("gt.runs.json").read_text())["runs"]
    assert len(gt) == 9
    for cell, acc in gt.items():  # the mean over the seeds
        assert acc == pytest.approx((runs[f"{cell}#0"]["top1"] + runs[f"{cell}#1"]["top1"]) / 2)
    meta = json.loads(ground_truth.with_name("gt.meta.json").read_text())
    assert meta["per_subspace"] == {"count=0,1": 3, "count=2": 3, "count=3": 3}
    assert meta["seed_to_seed_tau"]["pairs"][0]["cells"] == 9
    assert meta["split_half_tau"]["splits"] == 1 and meta["noise_ceiling"]["seeds"] == 2
    assert len(runs) == 18
    # The recipe says what was measured (the tiny preset: digits, NB201 C=2 N=1, 1 epoch here).
    recipe = meta["recipe"]
    assert recipe["space"] == "nb201" and recipe["epochs"] == 1 and recipe["seeds"] == [0, 1]
    assert {"C", "N"} <= set(recipe["space_options"]) and recipe["training_images"] > 0


def test_ground_truth_builder_resumes(ground_truth, capsys):
    # A second call finds every training done and trains nothing.
    assert main(["groundtruth", "build", str(ground_truth), "--per-subspace", "3", "--seeds", "2",
                 *TINY]) == 0
    out = capsys.readouterr().out
    assert "has 18 trainings, 18 already done" in out and "[1/" not in out
    # One more seed trains only the new (cell, seed) pairs.
    assert main(["groundtruth", "build", str(ground_truth), "--per-subspace", "3", "--seeds", "3",
                 *TINY]) == 0
    out = capsys.readouterr().out
    assert "[9/9]" in out and "[10/" not in out


def test_compare_produces_the_table_with_every_criterion(ground_truth, tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["compare", "--ground-truth", str(ground_truth), "--seeds", "2", "--preset", "tiny",
            "--out", str(out), "--set", "train.epochs=3", "--set", "train.steps_per_epoch=2",
            "--set", "split.gm_warmup_epochs=[1,2]", "--set", "split.fsnas_transfer=true",
            "--set", "split.gm_samples=1"]
    assert main(args) == 0
    res = json.loads((out / "compare.json").read_text())
    names = ["fsnas", "gmnas", "nonlinearity", "nonlinearity-nosbs", "oneshot"]
    assert list(res["criteria"]) == names  # every registered criterion
    for name in names:
        c = res["criteria"][name]
        runs = res["runs"][name]
        assert c["runs"] == 2
        assert c["tau_all"]["mean"] == pytest.approx(sum(r["tau_all"] for r in runs) / 2)
        # each run's tau is the one its saved scores give against the ground truth
        scores = json.loads((out / name / "seed1" / "scores.json").read_text())["scores"]
        truth = json.loads(ground_truth.read_text())
        cells = sorted(truth)
        assert runs[1]["tau_all"] == pytest.approx(
            kendalltau([scores[x] for x in cells], [truth[x] for x in cells])[0])
        assert all(r["images_drawn"] == runs[0]["images_drawn"] for r in runs)
    # the same number of training images for every criterion; the costs differ
    drawn = {res["runs"][n][0]["images_drawn"] for n in names}
    assert len(drawn) == 1
    assert res["runs"]["gmnas"][0]["supernets"] == 4 and res["runs"]["gmnas"][0]["split_seconds"] > 0
    assert res["runs"]["fsnas"][0]["supernets"] == 5 and res["runs"]["oneshot"][0]["supernets"] == 1
    assert res["runs"]["nonlinearity"][0]["subnet_images"] == 3 * drawn.pop()
    # how each criterion shared out its passes, stage by stage, supernet by supernet
    shares = {n: json.loads((out / n / "seed0" / "cost.json").read_text())["passes_per_supernet"]
              for n in names}
    for n in names:
        assert sum(map(sum, shares[n])) == res["runs"][n][0]["subnet_passes"], n
    assert shares["nonlinearity"] == [[6, 6, 6]]  # SBS: every supernet, every step
    assert [len(s) for s in shares["gmnas"]] == [1, 2, 4]  # split at epochs 1 and 2
    assert [len(s) for s in shares["fsnas"]] == [1, 5] and shares["oneshot"] == [[6]]
    table = (out / "compare.md").read_text()
    assert all(f"| {n} |" in table for n in names)
    assert (out / "compare.png").stat().st_size > 1000
    # a rerun reuses every finished run
    capsys.readouterr()
    assert main(args) == 0
    assert "==" not in capsys.readouterr().out


def test_compare_can_score_before_the_ground_truth_exists(ground_truth, tmp_path, capsys):
    cells = ground_truth.with_name("gt.cells.json")
    out = tmp_path / "cmp"
    args = ["compare", "--cells", str(cells), "--criteria", "oneshot,nonlinearity", "--seeds", "1",
            "--preset", "tiny", "--out", str(out), "--set", "train.steps_per_epoch=2"]
    assert main([*args, "--ground-truth", str(tmp_path / "not-yet.json")]) == 0
    assert "rerun with --ground-truth" in capsys.readouterr().out
    assert main([*args, "--ground-truth", str(ground_truth)]) == 0
    assert "==" not in capsys.readouterr().out  # nothing retrained
    assert set(json.loads((out / "compare.json").read_text())["criteria"]) == {
        "oneshot", "nonlinearity"}
    table = (out / "compare.md").read_text()
    assert "± n/a" in table and "± 0.000" not in table  # one seed: no std


def test_compare_variants_and_changed_settings(ground_truth, tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["compare", "--ground-truth", str(ground_truth), "--criteria", "nonlinearity",
            "--seeds", "1", "--preset", "tiny", "--out", str(out),
            "--set", "train.steps_per_epoch=2",
            "--variant", "separate-balanced:nonlinearity;split.structure=separate;"
                         "train.sampler=balanced"]
    assert main(args) == 0
    res = json.loads((out / "compare.json").read_text())
    assert list(res["criteria"]) == ["nonlinearity", "separate-balanced"]
    cfg = (out / "separate-balanced" / "seed0" / "config.yaml").read_text()
    assert "structure: separate" in cfg and "sampler: balanced" in cfg
    assert "structure: null" in (out / "nonlinearity" / "seed0" / "config.yaml").read_text()
    run = res["runs"]["separate-balanced"][0]
    assert run["subnet_images"] == run["images_drawn"]  # one subnet per step
    assert {"tau_cross", "tau_within_count=2", "predicted_mean_count=3"} <= set(run)
    # other settings into the same folder: refused, not silently reused
    capsys.readouterr()
    assert main([*args, "--set", "train.lr=0.2"]) == 2
    assert "other settings" in capsys.readouterr().err
    assert main(["compare", "--ground-truth", str(ground_truth), "--variant", "x:nope"]) == 2


def test_published_budget_gives_every_sub_supernet_the_whole_schedule():
    from efsnas import create_space
    from efsnas.app import compare
    from efsnas.app.config import load_config

    space = create_space("nb201")
    base = load_config(preset="tiny", overrides=["train.epochs=4", "split.fsnas_transfer=true",
                                                 "split.fsnas_warmup_epochs=2",
                                                 "split.gm_warmup_epochs=[1,2]"])
    fs = compare.variant_config(base, compare.variants()["fsnas"], 0, "x", budget="published",
                                space=space)
    assert fs.train.epochs == 2 + 2 * 5  # warm-up, then 5 supernets x the remaining 2 epochs
    gm = compare.variant_config(base, compare.variants()["gmnas"], 0, "x", budget="published",
                                space=space)
    # one-shot 1 epoch; 2 supernets x 1 epoch (split at 3); 4 supernets x 2 epochs
    assert gm.train.epochs == 1 + 2 + 8 and gm.split.gm_warmup_epochs == [1, 3]
    ours = compare.variant_config(base, compare.variants()["nonlinearity"], 0, "x",
                                  budget="published", space=space)
    assert ours.train.epochs == 4
    equal = compare.variant_config(base, compare.variants()["fsnas"], 0, "x", space=space)
    assert equal.train.epochs == 4


def test_passes_budget_matches_the_subnet_passes_of_this_method():
    from efsnas import create_space
    from efsnas.app import compare
    from efsnas.app.config import load_config

    space = create_space("nb201")
    base = load_config(preset="tiny", overrides=["train.epochs=4", "split.fsnas_transfer=true",
                                                 "split.fsnas_warmup_epochs=1",
                                                 "split.gm_warmup_epochs=[1,2]"])
    k = compare.draws_per_step(base, space)  # SBS: one subnet per subspace and step
    assert k == 3
    rows = compare.variants()

    def cfg(name):
        return compare.variant_config(base, rows[name], 0, "x", budget="passes", space=space)

    # one subnet a step: K times the steps, split epochs at the same fraction of the run
    assert cfg("oneshot").train.epochs == 4 * k
    assert cfg("nonlinearity-nosbs").train.epochs == 4 * k
    assert (cfg("fsnas").train.epochs, cfg("fsnas").split.fsnas_warmup_epochs) == (12, 3)
    assert (cfg("gmnas").train.epochs, cfg("gmnas").split.gm_warmup_epochs) == (12, [3, 6])
    # this method itself is unchanged: the reference
    ours = cfg("nonlinearity")
    same = compare.variant_config(base, rows["nonlinearity"], 0, "x", space=space)
    assert (ours.training_identity(), ours.train.epochs) == (same.training_identity(), 4)


def test_a_pool_starts_the_longest_runs_first():
    from efsnas import create_space
    from efsnas.app import compare
    from efsnas.app.config import load_config
    from efsnas.app.run import load_data

    base = load_config(preset="tiny", overrides=["train.epochs=4"])
    data, space = load_data(base), create_space("nb201")
    rows = compare.variants()

    def cost(name, budget):
        cfg = compare.variant_config(base, rows[name], 0, "x", budget=budget, space=space)
        return compare.planned_flops(cfg, space, data)

    one, ours = cost("oneshot", "equal"), cost("nonlinearity", "equal")
    # the same subnets drawn for three times the steps; this method draws 3 subnets a step,
    # each at half width (cheaper than a full-width pass, not 3 times as cheap: the stem and
    # the classifier keep their width)
    assert cost("oneshot", "passes") == pytest.approx(3 * one)
    assert one < ours < 3 * one
    jobs = ["one-equal", "ours", "one-passes", "tie"]
    assert compare.longest_first(jobs, [one, ours, 3 * one, one]) == [
        "one-passes", "ours", "one-equal", "tie"]


def test_compare_over_budgets_in_shards(ground_truth, tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["compare", "--ground-truth", str(ground_truth), "--criteria", "oneshot,nonlinearity",
            "--seeds", "2", "--preset", "tiny", "--out", str(out), "--budget", "equal,passes",
            "--set", "train.epochs=1", "--set", "train.steps_per_epoch=2"]
    assert main([*args, "--shard", "0/2"]) == 0
    assert "rerun without --shard" in capsys.readouterr().out
    assert not (out / "equal" / "compare.json").exists()
    assert main([*args, "--shard", "1/2"]) == 0
    # 2 rows x 2 seeds x 2 budgets, of which this method's passes runs are its equal runs:
    # 6 trainings between the two shards, and 2 copies
    costs = [json.loads(p.read_text()) for p in out.glob("*/*/seed*/cost.json")]
    assert len(costs) == 8 and sum("reused_from" not in c for c in costs) == 6
    capsys.readouterr()
    assert main(args) == 0  # the tables: nothing left to train
    assert "==" not in capsys.readouterr().out
    equal = json.loads((out / "equal" / "compare.json").read_text())
    passes = json.loads((out / "passes" / "compare.json").read_text())
    assert equal["budget"] == "equal" and passes["budget"] == "passes"
    ours = equal["runs"]["nonlinearity"]
    one_eq, one_pa = equal["runs"]["oneshot"], passes["runs"]["oneshot"]
    assert one_pa[0]["subnet_passes"] == ours[0]["subnet_passes"] == 3 * one_eq[0]["subnet_passes"]
    assert passes["runs"]["nonlinearity"] == ours  # the same training, reused
    reused = json.loads((out / "passes" / "nonlinearity" / "seed0" / "cost.json").read_text())
    assert reused["reused_from"].endswith("seed0")
    for run in one_eq + ours:  # measured and counted costs
        assert run["train_cpu_seconds"] > 0 and run["threads"] >= 1 and run["train_flops"] > 0
    # half-width supernets, three subnets a step: less work per pass than one-shot at full width
    assert ours[0]["train_flops"] / ours[0]["subnet_images"] < (
        one_eq[0]["train_flops"] / one_eq[0]["subnet_images"])
    assert (out / "quality_vs_cost.png").stat().st_size > 10_000
    assert "standard error" in (out / "equal" / "compare.md").read_text()
    # one budget of the study on its own: its folder, nothing trained, no stray row folders
    (out / "passes" / "compare.json").unlink()
    budget = args.index("--budget") + 1
    assert main([*args[:budget], "passes", *args[budget + 1:]]) == 0
    assert "==" not in capsys.readouterr().out
    assert json.loads((out / "passes" / "compare.json").read_text())["runs"] == passes["runs"]
    assert not (out / "oneshot").exists()


def test_ground_truth_is_not_shrunk_without_force(ground_truth, capsys):
    before = ground_truth.read_text()
    assert main(["groundtruth", "build", str(ground_truth), "--per-subspace", "1", "--seeds", "2",
                 *TINY]) == 2
    assert "--force" in capsys.readouterr().err and ground_truth.read_text() == before


@pytest.fixture
def one_thread():
    """Serial runs single-threaded like a pool's workers, so the comparison is of the
    scheduling alone."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _finished(folder):
    """Every run's scores and finalists under `folder`, by run path."""
    out = {}
    for path in sorted(folder.glob("**/seed*/scores.json")):
        fin = json.loads(path.with_name("finalists.json").read_text())
        out[str(path.parent.relative_to(folder))] = (
            json.loads(path.read_text())["scores"], fin["pick"],
            [r["heldout_accuracy"] for r in fin["finalists"]])
    return out


def test_workers_give_the_serial_results(ground_truth, tmp_path, capsys, one_thread):
    args = ["compare", "--ground-truth", str(ground_truth), "--criteria", "oneshot,nonlinearity",
            "--seeds", "2", "--preset", "tiny", "--set", "train.steps_per_epoch=2"]
    assert main([*args, "--out", str(tmp_path / "serial"), "--workers", "1"]) == 0
    assert main([*args, "--out", str(tmp_path / "pool"), "--workers", "2"]) == 0
    serial, pooled = _finished(tmp_path / "serial"), _finished(tmp_path / "pool")
    assert len(serial) == 4 and serial == pooled
    table = json.loads((tmp_path / "pool" / "compare.json").read_text())
    serial_table = json.loads((tmp_path / "serial" / "compare.json").read_text())
    for t in (table, serial_table):  # the runs' folders differ, and so does the out path
        t["config"].pop("out")
    assert table == {**table, **serial_table, "runs": table["runs"],
                     "criteria": table["criteria"]}
    runs = table["runs"]["nonlinearity"]
    assert [r["finalist_rank"] for r in runs] == [
        r["finalist_rank"] for r in json.loads(
            (tmp_path / "serial" / "compare.json").read_text())["runs"]["nonlinearity"]]
    assert all(isinstance(r["finalist_rank"], int) for r in runs)
    assert "GT rank of finalist pick" in (tmp_path / "pool" / "compare.md").read_text()
    # the ground truth's trainings too: two workers, the serial fixture's accuracies
    out = tmp_path / "gt.json"
    assert main(["groundtruth", "build", str(out), "--per-subspace", "3", "--seeds", "2",
                 "--workers", "2", *TINY]) == 0
    runs = json.loads(out.with_name("gt.runs.json").read_text())["runs"]
    serial_runs = json.loads(ground_truth.with_name("gt.runs.json").read_text())["runs"]
    assert {k: v["top1"] for k, v in runs.items()} == {
        k: serial_runs[k]["top1"] for k in runs}


def test_submitit_local_executor_gives_the_local_pools_results(ground_truth, tmp_path, capsys,
                                                              one_thread):
    """The cluster path without a cluster: each compare run is one submitit job (here a local
    process, as SLURM would run it), and the gathered results equal the local pool's."""
    pytest.importorskip("submitit", reason="submitit is not installed (pip install -e "
                                           "'.[dev]' or the cluster extra)")
    args = ["compare", "--ground-truth", str(ground_truth), "--criteria", "oneshot,nonlinearity",
            "--seeds", "1", "--preset", "tiny", "--set", "train.steps_per_epoch=2"]
    assert main([*args, "--out", str(tmp_path / "pool"), "--workers", "2"]) == 0
    assert main([*args, "--out", str(tmp_path / "jobs"), "--executor", "submitit-local"]) == 0
    pooled, jobs = _finished(tmp_path / "pool"), _finished(tmp_path / "jobs")
    assert len(pooled) == 2 and jobs == pooled
    assert list((tmp_path / "jobs" / "jobs").iterdir())  # submitit's job folder
    tables = [json.loads((tmp_path / d / "compare.json").read_text()) for d in ("pool", "jobs")]
    untimed = [{name: [{k: v for k, v in r.items() if "seconds" not in k} for r in runs]
                for name, runs in t["runs"].items()} for t in tables]
    assert untimed[0] == untimed[1]  # tau, ranks, finalist ranks, costs: all but wall times
    # a rerun finds every job's result in place and submits nothing
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "jobs"), "--executor", "submitit-local"]) == 0
    assert "trained in" not in capsys.readouterr().out
