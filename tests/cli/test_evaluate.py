"""Scoring: equivalence-class sharing, resumable evaluation of every cell."""

import json

import pytest
import torch

from efsnas import create_criterion, create_space
from efsnas.app import Run
from efsnas.cli.main import main
from efsnas.evaluate.scorer import SubnetScorer
from efsnas.supernets import FewShotSupernets


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("ev") / "run"
    assert main(["train", "--preset", "tiny", "--out", str(out)]) == 0
    return out


def test_sharing_scores_across_a_class_equals_evaluating_every_cell(trained):
    st = Run.open(trained)
    batches = st.heldout_batches()
    shared = SubnetScorer(st.supernets, batches)
    cells = [c for c in st.space.enumerate() if st.space.is_valid(c)][:600]
    a = shared.score(cells)
    assert shared.evaluated < len(cells)  # some cells shared a class
    # every cell evaluated on its own, without the canonical form
    each = []
    for c in cells:
        one = SubnetScorer(st.supernets, batches)
        one.key = lambda s, one=one: (one.supernets.route(s), tuple(s))  # no classes
        each.append(one.score([c])[0])
    assert a == pytest.approx(each, abs=1e-9)


def test_evaluation_resumes_after_a_kill(trained, tmp_path, monkeypatch):
    from efsnas.evaluate import scorer as scorer_mod

    out = tmp_path / "all.json"
    calls = {"n": 0}
    real = scorer_mod.SubnetScorer._evaluate

    def dying(self, k, subnet):
        calls["n"] += 1
        if calls["n"] == 250:
            raise KeyboardInterrupt  # stands for the process being killed
        return real(self, k, subnet)

    monkeypatch.setattr(scorer_mod.SubnetScorer, "_evaluate", dying)
    sample = ["--sample", "800", "--seed", "3", "--workers", "1"]  # killed in this process
    assert main(["evaluate", str(trained), *sample, "--out", str(out), "--no-progress",
                 "--save-every", "50"]) == 130
    partial = out.with_name(out.name + ".rank0.partial")
    done = len(json.loads(partial.read_text())["scores"])
    assert 200 <= done < 800
    monkeypatch.setattr(scorer_mod.SubnetScorer, "_evaluate", real)
    counted = {"n": 0}

    def counting(self, k, subnet):
        counted["n"] += 1
        return real(self, k, subnet)

    monkeypatch.setattr(scorer_mod.SubnetScorer, "_evaluate", counting)
    assert main(["evaluate", str(trained), *sample, "--out", str(out), "--no-progress"]) == 0
    scores = json.loads(out.read_text())["scores"]
    assert len(scores) == 800
    assert counted["n"] <= 800 - 200  # the classes scored before the kill are not redone
    assert not partial.exists()


def test_recalibrated_bn_scores_differ_from_batch_statistics():
    from efsnas import create_criterion, create_space
    from efsnas.supernets import FewShotSupernets

    space = create_space("mobilenet", width_mult=0.25, input_size=32, num_classes=5)
    split = create_criterion("nonlinearity").split(space)
    torch.manual_seed(0)
    nets = FewShotSupernets(split)
    x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 5, (16,))
    rng = __import__("random").Random(0)
    cells = [space.sample(rng) for _ in range(3)]
    batch = SubnetScorer(nets, [(x, y)], bn="batch").score(cells)
    recal = SubnetScorer(nets, [(x, y)], bn="recalibrate", recal_batches=[(x * 2 + 1, y)])
    assert recal.score(cells) != batch


def test_fsnas_cell_with_a_dead_split_edge_is_scored_by_its_own_supernet():
    space = create_space("nb201", C=4, N=1, input_size=8)
    split = create_criterion("fsnas", position=0).split(space)  # by the op on edge 1<-0
    torch.manual_seed(0)
    nets = FewShotSupernets(split)
    batches = [(torch.randn(16, 3, 8, 8), torch.randint(0, 10, (16,)))]
    # edge 1<-0 holds a conv but node 1 feeds nothing: the class (canonical form) has none there
    cell = (3, 3, 0, 3, 0, 3)  # 1<-0 conv3, 2<-0 conv3, 2<-1 none, 3<-0 conv3, 3<-1 none, 3<-2 conv3
    canon = space.canonical(cell)
    assert canon[0] == 0 and split.route(cell) != split.route(canon)
    scorer = SubnetScorer(nets, batches)
    got = scorer.score_with_loss(cell)
    k = split.route(cell)
    module = nets.supernet(k)
    with torch.inference_mode():
        own = module(batches[0][0], cell)
        other = nets.supernet(split.route(canon))(batches[0][0], canon)
    y = batches[0][1]
    assert got[0] == pytest.approx(100.0 * (own.argmax(1) == y).float().mean().item())
    assert got[1] == pytest.approx(torch.nn.functional.cross_entropy(own, y).item(), rel=1e-5)
    assert not torch.allclose(own, other)
    # the canonical cell itself still goes to its own supernet: two cache entries
    scorer.score_with_loss(canon)
    assert scorer.evaluated == 2


def test_evaluate_recomputes_when_its_settings_change_and_keeps_foreign_files(trained, tmp_path,
                                                                             capsys):
    out = tmp_path / "s.json"
    sample = ["--sample", "40", "--seed", "1", "--no-progress", "--out", str(out)]
    assert main(["evaluate", str(trained), *sample]) == 0
    first = json.loads(out.read_text())
    assert main(["evaluate", str(trained), *sample, "--max-images", "64"]) == 0
    second = json.loads(out.read_text())
    assert second["meta"]["images"] == 64 and second["meta"]["forward_passes"] > 0
    assert second["scores"] != first["scores"]
    # the same settings again: nothing to compute
    assert main(["evaluate", str(trained), *sample, "--max-images", "64"]) == 0
    assert json.loads(out.read_text())["meta"]["forward_passes"] == 0
    # a file that is not a scores file is never overwritten without --force
    config = trained / "config.yaml"
    before = config.read_text()
    capsys.readouterr()
    assert main(["evaluate", str(trained), "--sample", "3", "--out", str(config)]) == 2
    assert "--force" in capsys.readouterr().err and config.read_text() == before
    for bad in ("0", "-1"):
        assert main(["evaluate", str(trained), "--sample", bad]) == 2


def test_scoring_on_workers_equals_one_process(trained, tmp_path, monkeypatch):
    """`evaluate --workers 2` gives the scores of one single-thread process, with the same
    forward passes (each class once, across the workers)."""
    from efsnas.app import scoring
    from efsnas.cli import evaluate as ev

    monkeypatch.setattr(ev, "POOLED", 2)  # the pool for a small sample too
    pooled_calls = []
    real = scoring.score_on_pool
    monkeypatch.setattr(scoring, "score_on_pool",
                        lambda *a, **k: pooled_calls.append(1) or real(*a, **k))
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the serial reference single-threaded, as each worker is
    try:
        assert main(["evaluate", str(trained), "--sample", "60", "--workers", "1", "--out",
                     str(tmp_path / "serial.json"), "--no-progress"]) == 0
    finally:
        torch.set_num_threads(before)
    assert main(["evaluate", str(trained), "--sample", "60", "--workers", "2", "--out",
                 str(tmp_path / "pooled.json"), "--no-progress"]) == 0
    serial, pooled = (json.loads((tmp_path / f"{n}.json").read_text())
                      for n in ("serial", "pooled"))
    assert pooled["scores"] == serial["scores"] and pooled["loss"] == serial["loss"]
    assert len(pooled["scores"]) == 60
    assert pooled["meta"]["forward_passes"] == serial["meta"]["forward_passes"]
    assert pooled_calls == [1]  # scored on the pool, not in this process


def test_the_search_objective_on_workers_equals_one_process(trained):
    """A batch split between this process and a worker (the main job's search) scores as one
    single-thread scorer, each class once; with no idle worker this process scores alone."""
    import random

    from efsnas.app.scoring import PooledObjective
    from efsnas.fileio import file_fingerprint
    from efsnas.parallel import create_executor

    st = Run.open(trained)
    rng = random.Random(3)
    cells = [st.space.sample(rng) for _ in range(40)]
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        serial = st.scorer()
        expected = serial.score(cells)
    finally:
        torch.set_num_threads(before)
    class BusyPool:
        def submit(self, *args, **kwargs):
            raise AssertionError("a job sent to a pool whose workers are busy")

    with create_executor(2, device="cpu") as pool:
        scorer = st.scorer()
        busy = PooledObjective(scorer, cfg=st.cfg, run_dir=st.run_dir,
                               fingerprint=file_fingerprint(st.files.checkpoint),
                               executor=BusyPool(), workers=2, idle=lambda: False)
        assert busy.score(cells[:5]) == expected[:5]  # alone
        objective = PooledObjective(scorer, cfg=st.cfg, run_dir=st.run_dir,
                                    fingerprint=file_fingerprint(st.files.checkpoint),
                                    executor=pool, workers=2)
        assert objective.score(cells) == expected
    assert objective.evaluated == serial.evaluated
