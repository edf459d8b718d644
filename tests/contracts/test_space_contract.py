"""Contracts every registered search space keeps, checked on a tiny instance of each.

A new space plug-in is covered by adding its tiny keyword options to TINY; a registered space
missing from TINY fails every test here.
"""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from efsnas import create_space, registry
from module_costs import count_macs

# Keyword options building each registered space at a size the whole file runs in seconds.
TINY: dict[str, dict] = {
    "nb201": dict(C=4, N=1, input_size=8, num_classes=3),
    "mobilenet": dict(width_mult=0.25, input_size=32, num_classes=5),
}

SPACES = registry.names("space")


def tiny_space(name: str):
    if name not in TINY:
        pytest.fail(f"the registered space {name!r} has no tiny keyword options: add tiny "
                    f"kwargs for it to TINY in tests/contracts/test_space_contract.py")
    return create_space(name, **TINY[name])


@pytest.fixture(scope="module", params=SPACES)
def space(request):
    return tiny_space(request.param)


def test_every_registered_space_has_tiny_kwargs():
    missing = sorted(set(SPACES) - set(TINY))
    assert not missing, f"add tiny kwargs for {missing} to TINY in {__file__}"
    assert set(SPACES) >= {"nb201", "mobilenet"}


def _samples(space, n: int) -> list[tuple[int, ...]]:
    return [space.sample(random.Random(i)) for i in range(n)]


def _raw_samples(space, n: int, seed: int = 1000) -> list[tuple[int, ...]]:
    rng = random.Random(seed)
    return [space.sample_raw(rng) for _ in range(n)]


def _input(space, batch: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, space.in_channels, space.input_size, space.input_size, generator=g)


# ---- (a) encoding ---------------------------------------------------------------------------


def test_format_parse_and_index_round_trip(space):
    valid = _samples(space, 200)
    raw = _raw_samples(space, 200)  # valid or not: the encoding covers every subnet
    texts = {}
    for s in valid + raw:
        assert space.check(s) == s
        text = space.format(s)
        assert isinstance(text, str) and text
        assert space.parse(text) == s
        assert space.format(space.parse(text)) == text
        texts[s] = text
        if hasattr(space, "index") and hasattr(space, "from_index"):
            i = space.index(s)
            assert 0 <= i < space.size
            assert space.from_index(i) == s
    # distinct subnets have distinct text forms and indices
    assert len(set(texts.values())) == len(texts)
    assert len({space.index(s) for s in texts}) == len(texts)
    assert len(texts) > 100  # the draws are not all the same subnet


# ---- (b) sampling and evolution ---------------------------------------------------------------


def test_sample_mutate_and_crossover_give_valid_subnets(space):
    cells = _samples(space, 500)
    assert all(space.is_valid(c) and space.check(c) == c for c in cells)
    assert cells == _samples(space, 500)  # reproducible from the seed
    assert len(set(cells)) > 250
    rng = random.Random(0)
    for c in cells[:200]:
        if hasattr(space, "mutate"):
            m = space.mutate(c, rng)
            assert m != c and space.is_valid(m) and space.check(m) == m
        if hasattr(space, "crossover"):
            other = cells[-1]
            x = space.crossover(c, other, rng)
            assert space.is_valid(x) and space.check(x) == x
            assert all(g in (p, q) for g, p, q in zip(x, c, other))


# ---- (c) equivalence classes -------------------------------------------------------------------


def test_canonical_keeps_the_count_and_costs_and_is_idempotent(space):
    possible = set(space.possible_counts)
    for s in _samples(space, 300):
        c = space.canonical(s)
        assert space.check(c) == c and space.is_valid(c)
        assert space.canonical(c) == c
        assert space.nonlinearity_count(s) == space.nonlinearity_count(c)
        assert space.nonlinearity_count(s) in possible
        assert (space.flops(s), space.params(s)) == (space.flops(c), space.params(c))


# ---- (d) the extracted network is the supernet's subnet ----------------------------------------


def _randomise_bn(module: nn.Module, gen: torch.Generator) -> None:
    """Non-trivial BN statistics and affine parameters, where the module has them."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                if m.running_mean is not None:
                    m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                    m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
                if m.weight is not None:
                    m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)


def _storages(module: nn.Module) -> set[int]:
    return {p.untyped_storage().data_ptr() for p in module.parameters()}


@pytest.mark.parametrize("width_divisor", [1, 2])
def test_extract_equals_the_supernet(space, width_divisor):
    torch.manual_seed(0)
    sup = space.build_supernet(width_divisor=width_divisor)
    _randomise_bn(sup, torch.Generator().manual_seed(1))
    sup.eval()
    x = _input(space, 3)
    subnets = _samples(space, 5)
    if space.reference_subnet() is not None:
        subnets.append(space.reference_subnet())
    outs = []
    for s in subnets:
        net = sup.extract(s).eval()
        with torch.no_grad():
            ref = sup(x, s)
            torch.testing.assert_close(net(x), ref, rtol=0, atol=1e-5)
            # the equivalence class's representative runs the same function
            torch.testing.assert_close(sup(x, space.canonical(s)), ref, rtol=0, atol=1e-6)
            # channels_last input gives the same result
            torch.testing.assert_close(sup(x.to(memory_format=torch.channels_last), s), ref,
                                       rtol=1e-4, atol=1e-5)
        assert ref.shape == (3, space.num_classes)
        outs.append(ref)
        # copies, not views: training the extracted network leaves the supernet alone
        assert not _storages(net) & _storages(sup)
    # in training mode (batch statistics) too
    sup.train()
    s = subnets[0]
    net = sup.extract(s).train()
    with torch.no_grad():
        torch.testing.assert_close(net(x), sup(x, s), rtol=0, atol=1e-5)
    # the supernet's output depends on the subnet (the comparison above is not vacuous)
    assert any(not torch.allclose(outs[0], o) for o in outs[1:])


# ---- (e) costs -------------------------------------------------------------------------------


def test_flops_and_params_equal_the_built_module(space):
    x = _input(space, 1)
    subnets = _samples(space, 6)
    if space.reference_subnet() is not None:
        subnets.append(space.reference_subnet())
    for s in subnets:
        net = space.build_network(s).eval()
        assert space.params(s) == sum(p.numel() for p in net.parameters())
        assert space.flops(s) == count_macs(net, x)
        assert space.flops(s) > 0
