"""Ground-truth building blocks: a growable stratified sample, worker shards, reliability."""

import itertools
import json
import multiprocessing as mp

import numpy as np
from scipy.stats import kendalltau

from efsnas.evaluate.groundtruth import (
    RunsFile,
    noise_ceiling,
    plan,
    split_half_tau,
    stratified_sample,
)
from efsnas.registry import create_criterion, create_space


def _split():
    return create_criterion("nonlinearity").split(create_space("nb201"))


def test_larger_sample_extends_a_smaller_one_and_stays_stratified():
    split = _split()
    small = stratified_sample(split, 4, seed=3)
    big = stratified_sample(split, 10, seed=3)
    assert big[:len(small)] == small
    # round-robin: every prefix of 3k cells holds k cells of each subspace
    assert [split.route(c) for c in big[:6]] == [0, 1, 2, 0, 1, 2]
    space = split.space
    assert len({space.canonical(c) for c in big}) == 30 and all(c == space.canonical(c)
                                                                for c in big)
    assert stratified_sample(split, 10, seed=4) != big


def test_a_sampled_space_sample_grows_too():
    # MobileNet cannot be listed: subnets are drawn per subspace, and a pilot's sample must be
    # the first cells of the full one
    split = create_criterion("nonlinearity").split(create_space("mobilenet"))
    small = stratified_sample(split, 2, seed=0)
    big = stratified_sample(split, 5, seed=0)
    assert len(split) == 6 and len(small) == 12 and big[:12] == small
    assert [split.route(c) for c in big[:6]] == list(range(6))


def test_a_flops_limited_sample_keeps_under_the_limit_and_still_grows():
    space = create_space("mobilenet", width_mult=0.25, input_size=32, num_classes=10,
                         in_channels=1)
    split = create_criterion("nonlinearity").split(space)
    limit = 1.0e6  # about 38% of uniform subnets exceed it
    keep = lambda c: space.flops(c) <= limit  # noqa: E731
    free = stratified_sample(split, 5, seed=0)
    assert any(space.flops(c) > limit for c in free)
    small = stratified_sample(split, 2, seed=0, keep=keep)
    big = stratified_sample(split, 5, seed=0, keep=keep)
    assert big[:12] == small and len(big) == 30
    assert all(space.flops(c) <= limit for c in big)
    assert [split.route(c) for c in big[:6]] == list(range(6))
    nb = _split()  # a listed space filters its classes the same way
    some = stratified_sample(nb, 3, seed=0, keep=lambda c: c.count(0) >= 3)
    assert len(some) == 9 and all(c.count(0) >= 3 for c in some)


def test_shards_cover_the_plan_once_cell_by_cell():
    cells, seeds = ["a", "b", "c"], [0, 1, 2]
    parts = [plan(cells, seeds, shard=(i, 2)) for i in range(2)]
    assert sorted(parts[0] + parts[1]) == sorted(itertools.product(cells, seeds))
    assert not set(parts[0]) & set(parts[1])
    assert plan(cells, seeds)[:3] == [("a", 0), ("a", 1), ("a", 2)]


def _add_many(path, start):
    f = RunsFile(path, {"x": 1})
    for i in range(start, start + 20):
        f.add(f"cell{i}#0", {"top1": float(i)})


def test_runs_file_keeps_every_addition_of_concurrent_workers(tmp_path):
    path = tmp_path / "gt.runs.json"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_add_many, args=(path, s)) for s in (0, 100)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    runs = json.loads(path.read_text())["runs"]
    assert len(runs) == 40 and runs["cell119#0"]["top1"] == 119.0


def _simulated(n_cells=150, seeds=3, spread=2.0, noise=0.5, rng_seed=0):
    rng = np.random.default_rng(rng_seed)
    mu = rng.normal(80, spread, n_cells)
    acc = mu[:, None] + rng.normal(0, noise, (n_cells, seeds))
    per_seed = {f"c{i}": {s: float(acc[i, s]) for s in range(seeds)} for i in range(n_cells)}
    return mu, acc, per_seed


def test_noise_ceiling_matches_the_tau_a_perfect_ranker_reaches():
    rng = np.random.default_rng(1)
    for noise in (0.3, 1.5):
        mu, acc, per_seed = _simulated(noise=noise)
        # the true mu against fresh 3-seed averages
        empirical = np.mean([kendalltau(mu, mu + rng.normal(0, noise, (len(mu), 3)).mean(1))[0]
                             for _ in range(50)])
        est = noise_ceiling(per_seed)
        assert abs(est["tau"] - empirical) < 0.05, (noise, est, empirical)
        assert abs(est["noise_std"] - noise) < 0.1 * noise + 0.05
    # more noise, lower ceiling
    assert noise_ceiling(_simulated(noise=0.3)[2])["tau"] > noise_ceiling(
        _simulated(noise=1.5)[2])["tau"] + 0.1


def test_split_half_tau_uses_disjoint_halves():
    _, acc, per_seed = _simulated(seeds=4)
    got = split_half_tau(per_seed)
    assert got["splits"] == 3  # {01|23, 02|13, 03|12}
    halves = [((0, 1), (2, 3)), ((0, 2), (1, 3)), ((0, 3), (1, 2))]
    expect = np.mean([kendalltau(acc[:, list(a)].mean(1), acc[:, list(b)].mean(1))[0]
                      for a, b in halves])
    assert abs(got["mean"] - expect) < 1e-12
