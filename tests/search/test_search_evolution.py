import json
import math
import random

import pytest

from efsnas.errors import CheckpointError, UsageError
from efsnas.search import EvolutionSearch, create_searcher


class Killed(Exception):
    """Stands for the process being killed between generations."""


def kill_after(k):
    def hook(info):
        if info["generation"] == k:
            raise Killed

    return hook


@pytest.fixture
def objective(toy_score):
    return lambda batch: [toy_score(s) for s in batch]


def test_finds_the_known_optimum_of_the_toy_space(toy_space, toy_objective, toy_target):
    result = create_searcher("evolution", space=toy_space, seed=0).run(toy_objective)
    assert result.best.subnet == toy_target and result.best.score == 0
    assert result.best.text == "3-1-4-1-2-0-2-3"
    assert result.best.flops == toy_space.flops(toy_target)
    assert result.evaluated == 1000 and result.generations == 20  # 20 generations of 50
    assert toy_objective.calls == 20  # one batch per generation


def test_defaults_follow_the_method(toy_space):
    s = EvolutionSearch(toy_space)
    assert (s.population, s.generations, s.topk, s.mutations, s.crossovers, s.mutate_prob) == (
        50, 20, 10, 25, 25, 0.1)


def test_finds_a_true_top_1_percent_cell_on_nb201(nb201_accuracy, nb201_space):
    space = nb201_space
    threshold = sorted(nb201_accuracy.values(), reverse=True)[len(nb201_accuracy) // 100 - 1]
    for seed in range(3):
        result = create_searcher("evolution", space=space, seed=seed).run(
            lambda batch: [nb201_accuracy[space.format(s)] for s in batch])
        assert result.best.score >= threshold
        assert nb201_accuracy[result.best.text] == result.best.score
        assert result.evaluated <= 1000


def test_no_class_is_evaluated_twice(nb201_accuracy, nb201_space, toy_space, toy_objective):
    seen = []

    def nb201_objective(batch):
        seen.extend(batch)
        return [nb201_accuracy[nb201_space.format(s)] for s in batch]

    create_searcher("evolution", space=nb201_space, seed=1).run(nb201_objective)
    assert len({nb201_space.canonical(s) for s in seen}) == len(seen) == 1000
    assert all(nb201_space.is_valid(s) for s in seen)
    create_searcher("evolution", space=toy_space, seed=1).run(toy_objective)
    assert len({toy_space.canonical(s) for s in toy_objective.seen}) == len(toy_objective.seen)


@pytest.mark.parametrize("limit", ["max_flops", "max_params"])
def test_limits_are_honoured_before_evaluation(toy_space, toy_objective, toy_target, limit):
    cost = toy_space.flops if limit == "max_flops" else toy_space.params
    bound = 0.8 * cost(toy_target)  # the unconstrained optimum is out of bounds
    search = create_searcher("evolution", space=toy_space, seed=0, **{limit: bound})
    result = search.run(toy_objective)
    assert toy_objective.seen and all(cost(s) <= bound for s in toy_objective.seen)
    assert search.rejected > 0
    assert result.best.subnet != toy_target
    assert all(cost(c.subnet) <= bound for c in result.top)


def test_nb201_flops_limit(nb201_space):
    space = nb201_space
    rng = random.Random(0)
    limit = sorted(space.flops(space.sample(rng)) for _ in range(50))[10]
    seen = []

    def more_flops_is_better(batch):  # presses the search against the limit
        seen.extend(batch)
        return [float(space.flops(s)) for s in batch]

    result = create_searcher("evolution", space=space, seed=0, generations=4,
                             max_flops=limit).run(more_flops_is_better)
    assert seen and max(space.flops(s) for s in seen) <= limit
    assert result.best.flops <= limit


def test_same_seed_same_search_other_seed_other_search(toy_space, objective):
    def run(seed):
        return create_searcher("evolution", space=toy_space, seed=seed, generations=5).run(
            objective)

    a, b, c = run(3), run(3), run(4)
    assert a.history == b.history and a.to_dict() == b.to_dict()
    assert a.history != c.history


@pytest.mark.parametrize("k", [1, 7])
def test_resume_from_state_dict_gives_the_uninterrupted_result(toy_space, objective, k):
    full = create_searcher("evolution", space=toy_space, seed=5).run(objective)
    first = create_searcher("evolution", space=toy_space, seed=5)
    with pytest.raises(Killed):
        first.run(objective, on_generation=kill_after(k))
    state = json.loads(json.dumps(first.state_dict()))  # as it would come back from disk
    assert state["generation"] == k and len(state["history"]) == 50 * k
    second = create_searcher("evolution", space=toy_space, seed=5)
    second.load_state_dict(state)
    resumed = second.run(objective)
    assert resumed.to_dict() == full.to_dict()


def test_shorter_run_can_be_extended(toy_space, objective):
    full = create_searcher("evolution", space=toy_space, seed=2, generations=9).run(objective)
    short = create_searcher("evolution", space=toy_space, seed=2, generations=4)
    short.run(objective)
    longer = create_searcher("evolution", space=toy_space, seed=2, generations=9)
    longer.load_state_dict(short.state_dict())  # generations may change on resume
    assert longer.run(objective).history == full.history


def test_checkpoint_path_resumes_a_killed_search(tmp_path, toy_space, toy_score):
    path = tmp_path / "state" / "search.json"
    calls = []

    def counting(batch):
        calls.append(len(batch))
        return [toy_score(s) for s in batch]

    full = create_searcher("evolution", space=toy_space, seed=9, generations=6).run(counting)
    with pytest.raises(Killed):
        create_searcher("evolution", space=toy_space, seed=9, generations=6,
                        checkpoint=path).run(counting, on_generation=kill_after(3))
    assert json.loads(path.read_text())["generation"] == 3
    assert not list(path.parent.glob(".*.tmp"))  # the atomic write leaves no temporary file
    calls.clear()
    resumed = create_searcher("evolution", space=toy_space, seed=9, generations=6,
                              checkpoint=path).run(counting)
    assert len(calls) == 3  # only the missing generations ran
    assert resumed.to_dict() == full.to_dict()
    assert json.loads(path.read_text())["generation"] == 6


def test_checkpoint_callback_gets_every_generation(toy_space, objective):
    states = []
    create_searcher("evolution", space=toy_space, seed=0, generations=3,
                    checkpoint=states.append).run(objective)
    assert [s["generation"] for s in states] == [1, 2, 3]


def test_state_of_another_search_is_refused(toy_space, objective, tmp_path):
    a = create_searcher("evolution", space=toy_space, seed=0, generations=2)
    a.run(objective)
    with pytest.raises(CheckpointError, match="seed"):
        create_searcher("evolution", space=toy_space, seed=1).load_state_dict(a.state_dict())
    with pytest.raises(CheckpointError, match="population"):
        create_searcher("evolution", space=toy_space, population=60).load_state_dict(
            a.state_dict())
    with pytest.raises(CheckpointError, match="malformed"):
        create_searcher("evolution", space=toy_space).load_state_dict({"config": {}})
    bad = tmp_path / "s.json"
    bad.write_text("{not json")
    with pytest.raises(CheckpointError, match="unreadable"):
        create_searcher("evolution", space=toy_space, checkpoint=bad).run(objective)


def test_generation_reports(toy_space, objective, caplog):
    infos, scores, expected = [], [], []

    def recording(batch):
        out = objective(batch)
        scores.extend(out)
        return out

    def report(info):
        infos.append(info)
        top = sorted(scores, reverse=True)[:10]  # the searcher reports its 10 best
        expected.append((len(scores), max(scores), sum(top) / len(top)))

    with caplog.at_level("INFO", logger="efsnas.search"):
        create_searcher("evolution", space=toy_space, seed=0, generations=3).run(
            recording, on_generation=report)
    assert [i["generation"] for i in infos] == [1, 2, 3]
    assert [(i["evaluated"], i["best"], i["mean_top"]) for i in infos] == [
        (n, best, pytest.approx(mean)) for n, best, mean in expected]
    assert infos[0]["best"] > infos[0]["mean_top"]  # the top 10 are not all tied
    assert [i["best"] for i in infos] == sorted(i["best"] for i in infos)  # elitist
    assert sum("generation 3," in r.getMessage() for r in caplog.records) == 1


def test_small_space_is_exhausted_without_looping(toy_space_cls):
    space = toy_space_cls(positions=2, options=3)  # 8 valid subnets in 7 classes
    seen = []

    def objective(batch):
        seen.extend(batch)
        return [float(sum(s)) for s in batch]

    result = create_searcher("evolution", space=space, seed=0).run(objective)
    assert len(seen) == 7 == len({space.canonical(s) for s in seen})
    assert result.best.subnet == (2, 2) and result.generations == 1


def test_nan_scores_rank_last(toy_space, toy_score):
    result = create_searcher("evolution", space=toy_space, seed=0, generations=2).run(
        lambda b: [math.nan if s[0] == 3 else toy_score(s) for s in b])
    assert result.top and all(not math.isnan(c.score) for c in result.top)


def test_refuses_what_it_cannot_do(toy_space, plain_space):
    with pytest.raises(UsageError, match="EvolutionMixin"):
        EvolutionSearch(plain_space)
    with pytest.raises(UsageError, match="exceed the population"):
        EvolutionSearch(toy_space, population=20)
    with pytest.raises(UsageError, match="mutate_prob"):
        EvolutionSearch(toy_space, mutate_prob=0)
    with pytest.raises(UsageError, match="max_flops"):
        EvolutionSearch(toy_space, max_flops=-1)
    with pytest.raises(UsageError, match="returned 1 scores"):
        EvolutionSearch(toy_space).run(lambda b: [0.0])
