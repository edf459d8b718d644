"""Scoring: equivalence-class sharing, resumable evaluation of every cell."""

import json

import pytest
import torch

from efsnas import pipeline
from efsnas.cli.main import main
from efsnas.evaluate.scorer import SubnetScorer


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("ev") / "run"
    assert main(["train", "--preset", "tiny", "--out", str(out)]) == 0
    return out


def test_sharing_scores_across_a_class_equals_evaluating_every_cell(trained):
    st = pipeline.open_run(trained)
    batches = pipeline.heldout_batches(st)
    shared = SubnetScorer(st.supernets, batches)
    cells = [c for c in st.space.enumerate() if st.space.is_valid(c)][:600]
    a = shared.score(cells)
    assert shared.evaluated < len(cells)  # some cells shared a class
    # every cell evaluated on its own, without the canonical form
    each = []
    for c in cells:
        one = SubnetScorer(st.supernets, batches)
        one.space = type("NoClasses", (), {"canonical": staticmethod(lambda s: s)})()
        each.append(one.score([c])[0])
    assert a == pytest.approx(each, abs=1e-9)


def test_evaluation_resumes_after_a_kill(trained, tmp_path, monkeypatch):
    from efsnas.evaluate import scorer as scorer_mod

    out = tmp_path / "all.json"
    calls = {"n": 0}
    real = scorer_mod.SubnetScorer._evaluate

    def dying(self, subnet):
        calls["n"] += 1
        if calls["n"] == 250:
            raise KeyboardInterrupt  # stands for the process being killed
        return real(self, subnet)

    monkeypatch.setattr(scorer_mod.SubnetScorer, "_evaluate", dying)
    sample = ["--sample", "800", "--seed", "3"]
    assert main(["evaluate", str(trained), *sample, "--output", str(out), "--no-progress",
                 "--save-every", "50"]) == 130
    partial = out.with_name(out.name + ".rank0.partial")
    done = len(json.loads(partial.read_text())["scores"])
    assert 200 <= done < 800
    monkeypatch.setattr(scorer_mod.SubnetScorer, "_evaluate", real)
    counted = {"n": 0}

    def counting(self, subnet):
        counted["n"] += 1
        return real(self, subnet)

    monkeypatch.setattr(scorer_mod.SubnetScorer, "_evaluate", counting)
    assert main(["evaluate", str(trained), *sample, "--output", str(out), "--no-progress"]) == 0
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
