import random
from collections import Counter
from math import comb

import pytest
import torch
from torch import nn

from efsnas import create_criterion, create_space
from efsnas.errors import UsageError
from efsnas.spaces.mobilenet.encoding import NUM_LAYERS, SKIP, STAGE_FIRST, TOKENS
from module_costs import count_macs

TINY = dict(width_mult=0.25, input_size=32, num_classes=5)


@pytest.fixture(scope="module")
def space():
    return create_space("mobilenet")


@pytest.fixture(scope="module")
def tiny():
    return create_space("mobilenet", **TINY)


def uniform(token: str) -> tuple[int, ...]:
    return (TOKENS.index(token),) * NUM_LAYERS


def with_skips(base: str, skips) -> tuple[int, ...]:
    return tuple(SKIP if i in skips else TOKENS.index(base) for i in range(NUM_LAYERS))


def count_module(net: nn.Module, input_size: int, in_channels: int = 3) -> tuple[int, int]:
    """Multiply-accumulates of conv and linear layers (batch 1) and parameters, measured."""
    device = next(net.parameters()).device
    net.eval()
    x = torch.empty(1, in_channels, input_size, input_size, device=device)
    return count_macs(net, x), sum(p.numel() for p in net.parameters())


# ---- encoding ---------------------------------------------------------------------------------


def test_choices_and_size(space):
    assert space.choices == (7,) * 21
    assert not space.enumerable
    assert sorted(STAGE_FIRST) == [0, 4, 8, 12, 16, 20]
    assert space.possible_counts == tuple(range(12, 43, 2))


def test_text_form(space):
    # round trips over sampled subnets: tests/contracts/test_space_contract.py
    text = "k3e6-k5e3-skip-k7e6-" + "-".join(["k3e3"] * 17)
    assert space.format(space.parse(text)) == text
    assert space.parse(text)[:4] == (1, 2, 6, 5)


@pytest.mark.parametrize("bad,part", [
    ("-".join(["k3e6"] * 20), "expected 21 tokens"),
    ("-".join(["k3e6"] * 5 + ["k9e6"] + ["k3e6"] * 15), "token 5 ('k9e6')"),
    ("-".join(["k3e6"] * 20 + ["identity"]), "token 20 ('identity')"),
    ("k3e6--" + "-".join(["k3e6"] * 19), "token 1 ('')"),
])
def test_parse_errors_are_one_line(space, bad, part):
    with pytest.raises(UsageError) as e:
        space.parse(bad)
    msg = str(e.value)
    assert part in msg and "\n" not in msg
    if part.startswith("token"):
        assert "k3e3, k3e6, k5e3, k5e6, k7e3, k7e6, skip" in msg


def test_identity_at_stage_first_layer_is_invalid(space):
    assert space.is_valid(uniform("k3e6"))
    for i in range(NUM_LAYERS):
        s = with_skips("k5e6", {i})
        assert space.is_valid(s) == (i not in STAGE_FIRST)
    with pytest.raises(UsageError, match="cannot be skip"):
        space.build_network(with_skips("k3e3", {4}))


def test_count_is_twice_the_mbconvs(space):
    assert space.nonlinearity_count(uniform("k3e6")) == 42
    skippable = [i for i in range(NUM_LAYERS) if i not in STAGE_FIRST]
    for n in range(len(skippable) + 1):
        s = with_skips("k7e3", set(skippable[:n]))
        assert space.nonlinearity_count(s) == 2 * (21 - n)
    assert space.nonlinearity_count(with_skips("k3e3", skippable)) == 12


def test_sampling_is_uniform_valid_and_reproducible(space):
    draws = [space.sample(random.Random(7)) for _ in range(2)]
    assert draws[0] == draws[1]
    rng = random.Random(1)
    samples = [space.sample(rng) for _ in range(3000)]
    assert all(space.is_valid(s) for s in samples)
    first = Counter(s[0] for s in samples)
    other = Counter(s[1] for s in samples)
    assert set(first) == set(range(6)) and set(other) == set(range(7))
    assert min(other.values()) > 3000 / 7 * 0.8


def test_count_distribution_matches_method(space):
    rng = random.Random(2024)
    n = 20_000
    counts = Counter(space.nonlinearity_count(space.sample(rng)) for _ in range(n))
    # Binomial(15, 1/7) Identity layers among the 15 skippable ones.
    exact = {42 - 2 * j: comb(15, j) * (1 / 7) ** j * (6 / 7) ** (15 - j) for j in range(5)}
    method = {42: 0.10, 40: 0.25, 38: 0.29, 36: 0.21, 34: 0.10}
    for c, p in method.items():
        assert exact[c] == pytest.approx(p, abs=0.005)
        assert counts[c] / n == pytest.approx(p, abs=0.02)
    rest = sum(v for c, v in counts.items() if c <= 32) / n
    assert rest == pytest.approx(0.05, abs=0.02)


def test_default_split_gives_six_subspaces_that_sample_fast(space):
    split = create_criterion("nonlinearity").split(space)
    assert len(split) == 6
    assert split.width_divisor == 2
    groups = [set(s.spec["counts"]) for s in split.subspaces]
    assert groups[:5] == [{34}, {36}, {38}, {40}, {42}]
    assert groups[5] == set(range(12, 33, 2))
    rng = random.Random(5)
    for k in range(6):
        for _ in range(20):
            s = space.sample_where(split.subspaces[k].contains, rng, max_tries=2000)
            assert space.is_valid(s) and space.nonlinearity_count(s) in groups[k]
            assert split.route(s) == k
        assert split.route(split.sample(k, rng)) == k


# ---- costs -----------------------------------------------------------------------------------

FULL_SUBNETS = {
    "all-k3e6": uniform("k3e6"),
    "all-k7e6": uniform("k7e6"),
    "skips": with_skips("k5e3", {1, 2, 3, 13, 17, 18, 19}),
    "mixed": tuple([0, 6, 1, 5, 2, 3, 6, 4, 5, 6, 6, 1, 3, 0, 6, 2, 4, 6, 5, 1, 2]),
}


@pytest.mark.parametrize("name", list(FULL_SUBNETS))
def test_costs_match_the_full_scale_module(space, name):
    s = FULL_SUBNETS[name]
    with torch.device("meta"):  # no weight memory or initialisation: shapes are enough
        net = space.build_network(s)
    assert count_module(net, 224) == (space.flops(s), space.params(s))
    with torch.device("meta"):
        half = space.build_network(s, width_divisor=2)
    assert count_module(half, 224) == (space.flops(s, width_divisor=2),
                                       space.params(s, width_divisor=2))
    if name == "all-k3e6":
        assert 500e6 < space.flops(s) < 580e6 and 4.5e6 < space.params(s) < 5.0e6


@pytest.mark.parametrize("kw", [TINY, dict(width_mult=0.5, input_size=40, num_classes=10,
                                            in_channels=1),
                                dict(width_mult=0.25, input_size=32, num_classes=10,
                                     in_channels=1, stem_stride=1)])
def test_costs_match_small_modules(kw):
    space = create_space("mobilenet", **kw)
    rng = random.Random(9)
    for _ in range(3):
        s = space.sample(rng)
        for wd in (1, 2):
            net = space.build_network(s, width_divisor=wd)
            assert count_module(net, kw["input_size"], kw.get("in_channels", 3)) == (
                space.flops(s, width_divisor=wd), space.params(s, width_divisor=wd))
    assert space.params(s, affine=False) == sum(
        p.numel() for p in space.build_network(s, affine=False).parameters())


def test_channel_rounding(space, tiny):
    assert space.channels() == {"stem": 32, "first": 16, "head": 1280,
                                "stages": [32, 40, 80, 96, 192, 320]}
    # the authors divide exactly (40 / 2 = 20); "rounded" keeps MobileNet's multiples of 8
    half = space.channels(width_divisor=2)
    assert half == {"stem": 16, "first": 8, "head": 640, "stages": [16, 20, 40, 48, 96, 160]}
    rounded = create_space("mobilenet", width_division="rounded")
    assert rounded.channels(width_divisor=2)["stages"] == [16, 24, 40, 48, 96, 160]
    assert tiny.channels()["stages"] == [8, 12, 20, 24, 48, 80]
    assert tiny.channels(width_divisor=2)["stages"] == [4, 6, 10, 12, 24, 40]
    assert tiny.build_supernet(width_divisor=2).describe()["channels"] == tiny.channels(
        width_divisor=2)
    # the built supernet has the widths the plan states
    sup = space.build_supernet(width_divisor=2)
    assert sup.plan.as_dict() == half


def test_supernet_bn_options():
    from torch import nn

    for option, has_stats in (("recalibrated", True), ("batch", False)):
        sup = create_space("mobilenet", width_mult=0.25, supernet_bn=option).build_supernet()
        bns = [m for m in sup.modules() if isinstance(m, nn.BatchNorm2d)]
        assert bns and all(m.affine == has_stats and m.track_running_stats == has_stats
                           for m in bns)
    with pytest.raises(UsageError, match="supernet_bn"):
        create_space("mobilenet", supernet_bn="nope")
    with pytest.raises(UsageError, match="has no option 'C'"):
        create_space("mobilenet", C=8)


def test_bad_arguments(space):
    with pytest.raises(UsageError, match="num_classes"):
        create_space("mobilenet", num_classes=0)
    with pytest.raises(UsageError, match="width_mult"):
        create_space("mobilenet", width_mult=-1)
    with pytest.raises(UsageError, match="width divisor"):
        space.build_supernet(width_divisor=0)
    with pytest.raises(UsageError, match="outside"):
        space.flops((7,) * 21)


# ---- modules ---------------------------------------------------------------------------------


def _randomise_bn(module: nn.Module, gen: torch.Generator) -> None:
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)


def test_extract_gives_the_supernet_output(tiny):
    # sampled subnets, both widths, copies and channels_last: tests/contracts; here the widest
    # subnet and a stage whose skippable layers are all skipped
    torch.manual_seed(0)
    sup = tiny.build_supernet()
    _randomise_bn(sup, torch.Generator().manual_seed(1))
    sup.eval()
    x = torch.randn(2, 3, 32, 32)
    for s in [uniform("k7e6"), with_skips("k3e3", {1, 2, 3, 9})]:
        net = sup.extract(s).eval()
        with torch.no_grad():
            torch.testing.assert_close(net(x), sup(x, s), rtol=0, atol=1e-5)


def test_supernet_backward_touches_only_the_chosen_ops(tiny):
    sup = tiny.build_supernet()
    rng = random.Random(11)
    x = torch.randn(4, 3, 32, 32)
    for _ in range(3):
        sup.zero_grad(set_to_none=True)
        s = tiny.sample(rng)
        out = sup(x, s)
        assert out.shape == (4, 5)
        out.square().mean().backward()
        chosen = {id(p) for p in sup.subnet_parameters(s)}
        for name, p in sup.named_parameters():
            assert (p.grad is not None) == (id(p) in chosen), name
        assert len(chosen) == len(list(sup.extract(s).parameters()))


def test_supernet_holds_every_mbconv_and_rejects_bad_subnets(tiny):
    sup = tiny.build_supernet()
    assert all(set(layer.ops) == set(TOKENS[:6]) for layer in sup.body.layers)
    net = tiny.build_network(with_skips("k3e3", {1, 2}))
    assert len(net.body.layers[1].ops) == 0 and list(net.body.layers[0].ops) == ["k3e3"]
    with pytest.raises(ValueError, match="first layer of a stage"):
        sup(torch.randn(2, 3, 32, 32), with_skips("k3e3", {0}))


def test_dropout_keeps_the_state_dict_keys(tiny):
    s = tiny.sample(random.Random(1))
    a = tiny.build_network(s, dropout=0.2)
    b = tiny.build_supernet().extract(s)
    assert a.state_dict().keys() == b.state_dict().keys()
    assert any(isinstance(m, nn.Dropout) and m.p == 0.2 for m in a.modules())


def test_describe_is_json_ready(tiny):
    import json

    json.dumps(tiny.describe())
    json.dumps(tiny.build_supernet().describe())


def test_reference_under_a_flops_limit_is_the_largest_uniform_network_within_it(tiny):
    from efsnas.app.verify import pick_subnets

    flops = {t: tiny.flops(uniform(t)) for t in TOKENS if t != "skip"}
    limit = sorted(flops.values())[2] + 1  # three uniform networks fit, the rest do not
    ref = tiny.reference_subnet(max_flops=limit)
    assert tiny.flops(ref) == max(v for v in flops.values() if v <= limit)
    assert tiny.reference_subnet(max_flops=min(flops.values()) / 2) is None
    assert tiny.reference_subnet() == uniform("k3e6")  # no limit: MobileNetV2-like
    best = tiny.sample_valid(random.Random(0))
    rows = pick_subnets(tiny, best, random_subnets=4, reference=True, seed=1, max_flops=limit)
    assert [r for r, _ in rows].count("random") == 4
    assert all(tiny.flops(s) <= limit for r, s in rows if r != "found")


@pytest.fixture(scope="module")
def nested():
    return create_space("mobilenet", op_weights="nested", **TINY)


@pytest.mark.parametrize("structure", ["separate", "shared_trunk"])
def test_nested_supernet_extracts_its_slices_and_trains_only_them(nested, structure):
    torch.manual_seed(0)
    if structure == "separate":
        sup = nested.build_supernet(width_divisor=2)
    else:
        sup = nested.build_shared_supernet(sharing="trunk", subspaces=2, width_divisor=2,
                                           route=lambda s: int(s.count(SKIP) > 2))
    _randomise_bn(sup, torch.Generator().manual_seed(1))
    x = torch.randn(2, 3, 32, 32)
    rng = random.Random(3)
    subnets = [uniform("k7e6"), uniform("k3e3"), with_skips("k5e3", {1, 2, 3, 9}),
               *(nested.sample_valid(rng) for _ in range(3))]
    for s in subnets:
        sup.eval()
        net = sup.extract(s).eval()
        # the stand-alone network is the ordinary one: same names, same sizes as a fresh build
        fresh = nested.build_network(s, width_divisor=2).state_dict()
        assert {k: v.shape for k, v in net.state_dict().items()} == {
            k: v.shape for k, v in fresh.items()}
        with torch.no_grad():
            torch.testing.assert_close(net(x), sup(x, s), rtol=0, atol=1e-5)
    # the k3e3 choice of a layer reads (and trains) only the centre 3x3 of the first 3c channels
    sup.train()
    sup.zero_grad(set_to_none=True)
    sup(x, uniform("k3e3")).square().mean().backward()
    layer = (sup.body if structure == "separate" else sup.base.body).layers[1]
    g = layer.depthwise.weight.grad
    mid = layer.c_in * 3
    assert g[:mid, :, 2:5, 2:5].abs().sum() > 0
    assert g[mid:].abs().sum() == 0 and g[:, :, :2].abs().sum() == 0
    assert layer.bns["k7e6"]["expand"].weight.grad is None


def test_stem_stride_one_keeps_twice_the_resolution_in_every_stage():
    kw = dict(width_mult=0.25, input_size=32, num_classes=10, in_channels=1)
    s1 = create_space("mobilenet", stem_stride=1, op_weights="nested", **kw)
    s2 = create_space("mobilenet", **kw)
    cell = uniform("k3e6")
    # the ImageNet strides leave 1x1 maps in the last stage at 32 px; stride 1 leaves 2x2
    feats = []
    net = s1.build_network(cell)
    net.body.layers[-1].register_forward_hook(lambda m, i, o: feats.append(o.shape[-1]))
    net(torch.randn(1, 1, 32, 32))
    assert feats == [2]
    assert 3.9 < s1.flops(cell) / s2.flops(cell) < 4.0  # everything but the classifier x4
    # the option reaches the shared structures' own stems too
    sup = s1.build_shared_supernet(sharing="head", subspaces=2, width_divisor=2,
                                   route=lambda c: int(c.count(SKIP) > 2))
    sup.eval()
    x = torch.randn(2, 1, 32, 32)
    for c in (cell, with_skips("k5e3", {1, 2, 3, 9})):
        with torch.no_grad():
            torch.testing.assert_close(sup.extract(c).eval()(x), sup(x, c), rtol=0, atol=1e-5)
    assert s1.describe()["stem_stride"] == 1
    with pytest.raises(UsageError, match="stem_stride must be 1 or 2"):
        create_space("mobilenet", stem_stride=4)


def test_op_weights_is_checked():
    with pytest.raises(UsageError, match="op_weights must be one of separate, nested"):
        create_space("mobilenet", op_weights="tied")


@pytest.mark.parametrize("supernet_bn", ["recalibrated", "batch"])
@pytest.mark.parametrize("op_weights", ["separate", "nested"])
def test_channels_last_supernet_trains_and_scores_as_with_pytorchs_layers(supernet_bn,
                                                                          op_weights):
    """On CPU channels_last (how efsnas runs this space), efsnas.layers' batch norm fast paths
    give PyTorch's loss and gradients in training (both measured against float64, since six
    images through 21 layers of batch norm amplify rounding to about 0.3% in float32), and its
    outputs under BN recalibration and in eval mode: the narrow widths of the CPU presets (4-24
    channels here)."""
    from efsnas.layers import to_plain

    space = create_space("mobilenet", width_mult=0.25, input_size=32, num_classes=10,
                         in_channels=1, supernet_bn=supernet_bn, op_weights=op_weights)
    torch.manual_seed(0)
    sup = space.build_supernet(width_divisor=2).to(memory_format=torch.channels_last)
    plain = to_plain(sup)
    exact = to_plain(sup).double()
    g = torch.Generator().manual_seed(1)
    x = (torch.randn(6, 1, 32, 32, generator=g) + 1).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (6,), generator=g)
    subnet = space.sample(random.Random(2))
    losses = []
    for net, inputs in ((sup, x), (plain, x), (exact, x.double())):
        net.train()
        loss = torch.nn.functional.cross_entropy(net(inputs, subnet), y)
        loss.backward()
        losses.append(loss.double())
    ours, pytorchs = ((loss - losses[2]).abs() for loss in losses[:2])
    assert ours < max(3 * pytorchs, 1e-5), (ours.item(), pytorchs.item())
    for (name, e), p, q in zip(exact.named_parameters(), plain.parameters(), sup.parameters()):
        assert (e.grad is None) == (q.grad is None), name
        if e.grad is None or e.grad.norm() < 1e-2:  # e.g. biases before batch norm: zero
            continue
        ours, pytorchs = ((t.grad.double() - e.grad).norm() / e.grad.norm() for t in (q, p))
        assert ours < max(3 * pytorchs, 1e-4), (name, ours.item(), pytorchs.item())
    if supernet_bn == "recalibrated":
        outputs = []
        with torch.inference_mode():
            for net, inputs in ((sup, x), (plain, x), (exact, x.double())):
                for m in net.modules():  # the scorer's recalibration, then its eval pass
                    if isinstance(m, nn.BatchNorm2d):
                        m.reset_running_stats()
                        m.momentum = None
                net(inputs, subnet)
                net.eval()
                outputs.append(net(inputs, subnet).double())
        ours, pytorchs = ((o - outputs[2]).norm() / outputs[2].norm() for o in outputs[:2])
        assert ours < max(3 * pytorchs, 1e-5), (ours.item(), pytorchs.item())
