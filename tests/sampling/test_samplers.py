from collections import Counter

import pytest
import torch

from efsnas import create_criterion, create_space
from efsnas.sampling import create_sampler
from efsnas.supernets import FewShotSupernets
from efsnas.train.step import build_optimizer, train_step


@pytest.fixture(scope="module")
def split():
    return create_criterion("nonlinearity").split(create_space("nb201"))


def _subspace_frequencies(sampler, steps=3000):
    c = Counter(k for step in range(steps) for k, _ in sampler.draw(step))
    total = sum(c.values())
    return [c[k] / total for k in range(3)], total


def test_uniform_follows_subspace_sizes(split):
    freq, _ = _subspace_frequencies(create_sampler("uniform", split, seed=1))
    sizes = [len(m) for m in split.members()]
    for f, n in zip(freq, sizes):
        assert f == pytest.approx(n / sum(sizes), abs=0.03)  # 1000/15284 = 6.5% for count 3


def test_balanced_chooses_subspaces_uniformly(split):
    freq, total = _subspace_frequencies(create_sampler("balanced", split, seed=1))
    assert total == 3000
    for f in freq:
        assert f == pytest.approx(1 / 3, abs=0.03)


def test_sbs_draws_one_subnet_per_subspace_every_step(split):
    s = create_sampler("sbs", split, seed=2)
    for step in range(200):
        draws = s.draw(step)
        assert [k for k, _ in draws] == [0, 1, 2]
        assert all(split.route(c) == k for k, c in draws)


@pytest.mark.parametrize("name", ["uniform", "balanced", "sbs"])
def test_samplers_are_deterministic_and_never_draw_disconnected(split, name):
    a, b = create_sampler(name, split, seed=7), create_sampler(name, split, seed=7)
    other = create_sampler(name, split, seed=8)
    draws = [a.draw(i) for i in range(500)]
    assert draws == [b.draw(i) for i in range(500)]
    assert draws != [other.draw(i) for i in range(500)]
    assert all(split.space.is_valid(c) for d in draws for _, c in d)


def test_sbs_step_updates_every_supernet_once_and_nothing_else():
    space = create_space("nb201", C=4, N=1, input_size=8)
    split = create_criterion("nonlinearity", width_divisor=1).split(space)
    torch.manual_seed(0)
    nets = FewShotSupernets(split)
    opt = build_optimizer(nets, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4,
                          wd_weights_only=False)
    draws = create_sampler("sbs", split, seed=0).draw(0)
    before = {n: p.detach().clone() for n, p in nets.named_parameters()}
    x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 10, (8,))
    modules = [nets.supernet(k) for k in range(3)]
    train_step(modules, draws, x, y, opt)
    for k, cell in draws:
        used = {id(p) for p in nets.supernet(k).subnet_parameters(cell)}
        for n, p in nets.supernet(k).named_parameters():
            changed = not torch.equal(before[f"supernets.{k}.{n}"], p)
            assert changed == (id(p) in used), n
    # exactly one update each: every gradient equals the one its own subnet gives alone
    for k, cell in draws:
        solo = FewShotSupernets(split)
        solo.load_state_dict({n: before[n] for n in before}, strict=False)
        torch.nn.functional.cross_entropy(solo(x, cell, k), y).backward()
        for (n, p), (_, q) in zip(nets.supernet(k).named_parameters(),
                                  solo.supernet(k).named_parameters()):
            assert (p.grad is None) == (q.grad is None), n
            if p.grad is not None:
                assert torch.allclose(p.grad, q.grad, atol=1e-6), n
