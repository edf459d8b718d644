import itertools
import json
import random

import pytest
import torch

from efsnas import create_criterion, create_space
from efsnas.errors import UsageError
from efsnas.sampling.samplers import UniformSampler
from efsnas.split.gmnas import (
    GMNASSplit,
    SplitDecision,
    best_partition,
    choose_split,
    gradient_similarity,
    owned_parameters,
    source_indices,
    split_each,
    split_supernets,
    subspace_from_spec,
)
from efsnas.supernets import FewShotSupernets
from efsnas.train.step import build_optimizer, train_step

SPACES = {
    "nb201": dict(C=4, N=1, input_size=8),
    "mobilenet": dict(width_mult=0.1, input_size=32, num_classes=5),
}


def _tiny_space(name):
    if name == "mobilenet":
        pytest.importorskip("efsnas.spaces.mobilenet")
    return create_space(name, **SPACES[name])


def _batches(space, n=1, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, 3, space.input_size, space.input_size, generator=g),
             torch.randint(0, space.num_classes, (size,), generator=g)) for _ in range(n)]


def _warm(space, steps=3):
    torch.manual_seed(0)
    nets = FewShotSupernets(GMNASSplit().split(space))
    opt = build_optimizer(nets, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.0,
                          wd_weights_only=False)
    sampler = UniformSampler(nets.split, seed=0)
    x, y = _batches(space, size=8, seed=1)[0]
    for step in range(steps):
        train_step(list(nets.supernets), sampler.draw(step), x, y, opt)
    return nets


@pytest.fixture(scope="module")
def nb201():
    space = _tiny_space("nb201")
    return space, _warm(space)


def _states_equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ---- the cut -------------------------------------------------------------------------------


def _brute_force(sim, k):
    n = len(sim)
    best = float("inf")
    for labels in itertools.product(range(k), repeat=n):
        if len(set(labels)) == k:
            best = min(best, sum(sim[i][j] for i in range(n) for j in range(i + 1, n)
                                 if labels[i] != labels[j]))
    return best


def test_best_partition_known_answer():
    # Two clusters {0, 1, 2} and {3, 4}: similar inside, dissimilar across.
    hi, lo = 0.9, -0.2
    c = [0, 0, 0, 1, 1]
    sim = [[1.0 if i == j else (hi if c[i] == c[j] else lo) for j in range(5)] for i in range(5)]
    groups, cut = best_partition(torch.tensor(sim), 2)
    assert groups == [[0, 1, 2], [3, 4]]
    assert cut == pytest.approx(6 * lo)


@pytest.mark.parametrize("n,k", [(5, 2), (5, 3), (6, 2), (7, 3), (7, 4)])
def test_best_partition_is_exact(n, k):
    rng = random.Random(n * 10 + k)
    sim = [[0.0] * n for _ in range(n)]
    for i in range(n):
        sim[i][i] = 1.0
        for j in range(i + 1, n):
            sim[i][j] = sim[j][i] = rng.uniform(-1, 1)
    groups, cut = best_partition(sim, k)
    assert len(groups) == k and all(groups)
    assert sorted(i for g in groups for i in g) == list(range(n))
    assert cut == pytest.approx(_brute_force(sim, k))


def test_best_partition_ties_and_balance():
    groups, cut = best_partition(torch.zeros(5, 5), 2)  # all cuts tie: first in label order
    assert groups == [[0, 1, 2, 3], [4]] and cut == 0.0
    sim = torch.full((5, 5), 0.5)
    sim[4, :] = sim[:, 4] = -1.0  # 4 alone is the min cut; balanced cuts must keep 2|3
    assert best_partition(sim, 2)[0] == [[0, 1, 2, 3], [4]]
    groups, _ = best_partition(sim, 2, balanced=True)
    assert sorted(len(g) for g in groups) == [2, 3]
    with pytest.raises(UsageError, match="non-empty groups"):
        best_partition(torch.eye(2), 3)


# ---- subspaces, replay and JSON ------------------------------------------------------------


def test_no_decisions_is_the_oneshot_split(nb201):
    space, _ = nb201
    split = create_criterion("gmnas").split(space)
    assert len(split) == 1 and split.criterion == "gmnas"
    assert len(split.members()[0]) == 15625 - 341
    assert split.describe()["decisions"] == []


def test_subspace_spec_round_trip():
    sub = subspace_from_spec({"assign": {"2": [3, 0], "5": [1]}})
    assert sub.name == "pos2=0,3&pos5=1"
    assert sub.spec == {"assign": {"2": [0, 3], "5": [1]}}
    assert sub.contains((0, 0, 3, 0, 0, 1)) and not sub.contains((0, 0, 1, 0, 0, 1))
    assert subspace_from_spec(json.loads(json.dumps(sub.spec))).name == sub.name
    with pytest.raises(UsageError, match="bad GM-NAS subspace"):
        subspace_from_spec({"assign": {"x": [1]}})


def test_bad_decisions_are_refused(nb201):
    space, _ = nb201
    bad = [SplitDecision(parent=0, position=1, groups=[[0, 1], [2, 3]], score=0.0),
           SplitDecision(parent=1, position=1, groups=[[0, 1], [2, 3, 4]], score=0.0),
           SplitDecision(parent=0, position=9, groups=[[0, 1], [2, 3, 4]], score=0.0)]
    for d, msg in zip(bad, ["covering", "parent 1", "position 9"], strict=True):
        with pytest.raises(UsageError, match=msg):
            GMNASSplit(decisions=[d]).split(space)


# ---- learning a split ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["nb201", "mobilenet"])
def test_choose_split_is_valid_and_deterministic(name, nb201):
    space = nb201[0] if name == "nb201" else _tiny_space(name)
    nets = nb201[1] if name == "nb201" else _warm(space, steps=1)
    net, sub = nets.supernet(0), nets.split.subspaces[0]
    positions = None if name == "nb201" else [0, 1]  # mobilenet: a stage's first layer and the next
    before = {k: v.clone() for k, v in net.state_dict().items()}
    batches = _batches(space, n=1, size=4 if name == "mobilenet" else 8)
    decide = lambda: choose_split(net, space, sub, batches, num_groups=2, samples=2,  # noqa: E731
                                  positions=positions, rng=random.Random(7))
    d = decide()
    assert d.seconds > 0 and d.score == min(d.scores_per_position.values())
    assert set(d.scores_per_position) == set(positions or range(len(space.choices)))
    assert len(d.groups) == 2 and all(d.groups)
    assert sorted(c for g in d.groups for c in g) == list(range(space.choices[d.position]))
    sim = torch.tensor(d.similarity)
    assert torch.allclose(sim, sim.T) and torch.allclose(sim.diag(), torch.ones(len(sim)))
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # weights, BN stats
    again = decide()
    assert (again.position, again.groups, again.similarity) == (d.position, d.groups, d.similarity)

    split = GMNASSplit(decisions=[d]).split(space)
    assert len(split) == 2
    split.validate()  # enumerable spaces: every valid subnet in exactly one child
    rng = random.Random(0)
    for _ in range(200):
        s = space.sample(rng)
        assert sum(sub.contains(s) for sub in split.subspaces) == 1
        assert s[d.position] in d.groups[split.route(s)]
    if name == "mobilenet":  # Identity is never valid at a stage's first layer: left out, grouped
        choices, _ = gradient_similarity(net, space, sub, 0, batches, samples=1,
                                         rng=random.Random(0))
        assert choices == list(range(6))


def test_owned_parameters_are_the_positions_operations(nb201):
    space, nets = nb201
    owned = owned_parameters(nets.supernet(0), space, 2)
    assert owned and all(".edges.2." in n for n in owned)
    convs = {n for n, _ in nets.supernet(0).named_parameters() if ".edges.2." in n}
    assert owned == convs


def test_replay_json_and_two_successive_splits(nb201):
    space, warm = nb201
    crit = GMNASSplit()
    nets = FewShotSupernets(crit.split(space))
    nets.load_state_dict(warm.state_dict())
    batches = _batches(space)
    nets, first = split_each(nets, crit, batches, samples=1, rng=random.Random(1))
    assert len(nets) == 2 and len(first) == 1 and len(crit.decisions) == 1
    for child in nets.supernets:  # children start from the parent's weights
        assert _states_equal(child, warm.supernet(0))
    nets, second = split_each(nets, crit, batches, samples=1, rng=random.Random(2))
    assert [d.parent for d in second] == [1, 0] and len(nets) == 4
    assert all(d.position != first[0].position for d in second)  # unsplit positions first
    nets.split.validate()
    assert sum(len(m) for m in nets.split.members()) == 15625 - 341

    restored = create_criterion("gmnas", decisions=json.loads(crit.to_json())["decisions"])
    assert GMNASSplit.from_json(crit.to_json()).state_dict() == crit.state_dict()
    replay = restored.split(space)
    assert [s.spec for s in replay.subspaces] == [s.spec for s in nets.split.subspaces]
    assert [s.name for s in replay.subspaces] == [s.name for s in nets.split.subspaces]
    assert replay.members() == nets.split.members()
    described = json.loads(json.dumps(nets.split.describe()))
    assert len(described["decisions"]) == 3 and len(described["subspaces"]) == 4


def test_split_supernets_copies_parent_and_carries_others(nb201):
    space, warm = nb201
    d0 = SplitDecision(parent=0, position=0, groups=[[0], [1, 2, 3, 4]], score=0.0)
    crit = GMNASSplit(decisions=[d0])
    nets = FewShotSupernets(crit.split(space))
    for k in range(2):  # distinct weights per supernet
        torch.manual_seed(k)
        for p in nets.supernet(k).parameters():
            p.data.normal_()
    d1 = SplitDecision(parent=1, position=3, groups=[[0, 1], [2, 3, 4]], score=0.0)
    assert source_indices(d1, 2) == [0, 1, 1]
    new = split_supernets(nets, d1, crit)
    assert len(new) == 3 and crit.decisions == [d0, d1]
    assert _states_equal(new.supernet(0), nets.supernet(0))
    assert _states_equal(new.supernet(1), nets.supernet(1))
    assert _states_equal(new.supernet(2), nets.supernet(1))
    assert new.supernet(1).body.stem[0].weight is not nets.supernet(1).body.stem[0].weight
    new.split.validate()
    with pytest.raises(UsageError, match="subspaces"):
        split_supernets(nets, d1, crit)  # crit now holds 3 subspaces, nets only 2
