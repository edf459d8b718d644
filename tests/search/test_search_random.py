import pytest

from efsnas.errors import UsageError
from efsnas.search import RandomSearch, create_searcher, list_searchers, searcher_options


@pytest.fixture
def objective(toy_score):
    return lambda batch: [toy_score(s) for s in batch]


def test_budget_and_batches(toy_space, toy_objective):
    result = create_searcher("random", space=toy_space, seed=0, budget=120,
                             batch_size=50).run(toy_objective)
    assert result.evaluated == 120 == len(toy_objective.seen)
    assert toy_objective.calls == 3 and result.generations == 3
    assert len({toy_space.canonical(s) for s in toy_objective.seen}) == 120
    assert [c.score for c in result.top] == sorted((c.score for c in result.top), reverse=True)
    assert len(result.top) == 10


def test_works_on_a_space_without_evolution_operators(plain_space, toy_objective):
    result = RandomSearch(plain_space, seed=1, budget=30).run(toy_objective)
    assert result.evaluated == 30


def test_limits_and_determinism(toy_space, objective):
    def run(seed):
        return create_searcher("random", space=toy_space, seed=seed, budget=200,
                               max_params=300).run(objective)

    a, b = run(4), run(4)
    assert a.history == b.history and a.history != run(5).history
    assert all(toy_space.params(tuple(h["subnet"])) <= 300 for h in a.history)


def test_resume(toy_space, objective):
    full = create_searcher("random", space=toy_space, seed=7, budget=300).run(objective)
    part = create_searcher("random", space=toy_space, seed=7, budget=100)
    part.run(objective)
    rest = create_searcher("random", space=toy_space, seed=7, budget=300)
    rest.load_state_dict(part.state_dict())  # the budget may grow on resume
    assert rest.run(objective).to_dict() == full.to_dict()


def test_registry(plain_space):
    assert list_searchers() == ["evolution", "random"]
    assert {"budget", "max_flops", "seed"} <= set(searcher_options("random"))
    with pytest.raises(UsageError, match="unknown searcher 'bayes'"):
        create_searcher("bayes", space=plain_space)
    with pytest.raises(UsageError, match="no option 'population'"):
        create_searcher("random", space=plain_space, population=5)
    with pytest.raises(UsageError, match="needs space="):
        create_searcher("random")
    with pytest.raises(UsageError, match="budget"):
        RandomSearch(plain_space, budget=0)
