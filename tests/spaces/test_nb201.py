import random
from collections import defaultdict

import pytest
import torch
from torch import nn

from efsnas import create_space
from efsnas.errors import UsageError
from efsnas.spaces.nb201.cell import NUM_CELLS, canonical_cell, format_cell, parse_cell


def test_count_reproduces_authors_groups(nb201_space, all_cells, nb201_groups):
    ours = defaultdict(list)
    for c in all_cells:
        ours[str(nb201_space.nonlinearity_count(c))].append(nb201_space.format(c))
    assert {k: sorted(v) for k, v in ours.items()} == {k: sorted(v) for k, v in nb201_groups.items()}
    assert [len(ours[k]) for k in "0123"] == [1983, 7122, 5520, 1000]


def test_disconnected_cells_are_exactly_the_chance_level_ones(nb201_space, all_cells, nb201_accuracy):
    disconnected = {nb201_space.format(c) for c in all_cells if not nb201_space.is_valid(c)}
    assert len(disconnected) == 341
    assert all(nb201_accuracy[c] == pytest.approx(10.0) for c in disconnected)
    # no connected cell that trains sits at chance level
    at_chance = {c for c, a in nb201_accuracy.items() if a == pytest.approx(10.0)}
    assert at_chance == disconnected


def test_round_trip_text_and_index(nb201_space, all_cells):
    assert len(all_cells) == NUM_CELLS == 15625
    for i, c in enumerate(all_cells):
        assert nb201_space.index(c) == i
        assert nb201_space.from_index(i) == c
        assert nb201_space.parse(nb201_space.format(c)) == c
    assert len({nb201_space.format(c) for c in all_cells}) == 15625


def test_text_form_matches_benchmark_order():
    text = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    assert parse_cell(text) == (3, 3, 4, 1, 3, 1)
    assert format_cell(parse_cell(text)) == text


@pytest.mark.parametrize("bad,part", [
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|", "3 node groups"),
    ("|conv9~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown operation 'conv9'"),
    ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 needs 2 input"),
    ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "cannot take input from node 1"),
    ("|none0|+|none~0|none~1|+|none~0|none~1|none~2|", "op~input"),
    ("none~0+|none~0|none~1|+|none~0|none~1|none~2|", "must be |...|"),
])
def test_malformed_cell_names_the_bad_part(bad, part):
    with pytest.raises(UsageError) as e:
        parse_cell(bad)
    assert part in str(e.value)
    assert "\n" not in str(e.value)


def test_equivalence_classes(nb201_space, all_cells):
    classes = {canonical_cell(c) for c in all_cells}
    assert len(classes) == 9445  # documented in docs/method.md
    # dead edges are removed: edge 1<-0 is dead when node 1 feeds nothing
    cell = parse_cell("|nor_conv_3x3~0|+|skip_connect~0|none~1|+|skip_connect~0|none~1|none~2|")
    assert canonical_cell(cell) == parse_cell(
        "|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")


def _classes_with_several_members(all_cells, n, seed=0):
    by_class = defaultdict(list)
    for c in all_cells:
        by_class[canonical_cell(c)].append(c)
    multi = [v for k, v in by_class.items() if len(v) > 1 and any(k)]
    return random.Random(seed).sample(multi, n)


def test_equivalent_cells_give_identical_supernet_outputs(all_cells):
    space = create_space("nb201", C=4, N=1, input_size=8)
    torch.manual_seed(0)
    sn = space.build_supernet()
    x = torch.randn(4, 3, 8, 8)
    for members in _classes_with_several_members(all_cells, 6):
        outs = [sn(x, c) for c in members[:4]]
        for o in outs[1:]:
            assert torch.equal(o, outs[0])
    # and a different class gives a different output
    a, b = _classes_with_several_members(all_cells, 2, seed=1)
    assert not torch.allclose(sn(x, a[0]), sn(x, b[0]))


def _count_module(model: nn.Module, x: torch.Tensor) -> int:
    macs = 0

    def hook(m, inp, out):
        nonlocal macs
        if isinstance(m, nn.Conv2d):
            macs += out.numel() // out.shape[0] * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, nn.Linear):
            macs += m.in_features * m.out_features

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    model(x)
    for h in hs:
        h.remove()
    return macs


@pytest.mark.parametrize("kw", [dict(C=16, N=5, input_size=32, num_classes=10),
                                dict(C=5, N=2, input_size=28, in_channels=1, num_classes=10),
                                dict(C=8, N=1, input_size=16, num_classes=120)])
def test_flops_and_params_agree_with_built_module(kw, all_cells):
    space = create_space("nb201", **kw)
    x = torch.randn(1, space.in_channels, space.input_size, space.input_size)
    for c in random.Random(3).sample(all_cells, 6) + [(3,) * 6, (0,) * 6]:
        net = space.build_network(c).eval()
        assert space.params(c) == sum(p.numel() for p in net.parameters())
        assert space.flops(c) == _count_module(net, x)
        assert space.params(c, affine=False) == sum(
            p.numel() for p in space.build_network(c, affine=False).parameters())


def test_extracted_network_matches_supernet_stacked_and_disconnected(nb201_space, all_cells):
    # tests/contracts checks valid cells at N=1; here two cells a stage and disconnected cells
    space = create_space("nb201", C=4, N=2, input_size=8)
    sn = space.build_supernet()
    x = torch.randn(3, 3, 8, 8)
    disconnected = [c for c in all_cells if not nb201_space.is_valid(c)]
    for c in random.Random(5).sample(all_cells, 3) + disconnected[:2] + disconnected[-2:]:
        assert torch.allclose(sn.extract(c)(x), sn(x, c), atol=1e-6)


def test_supernet_widths_and_grayscale():
    space = create_space("nb201", C=16, N=1, in_channels=1, num_classes=7, input_size=28)
    sn = space.build_supernet(width_divisor=3)
    assert sn.body.stem[0].out_channels == 5 and sn.body.stem[0].in_channels == 1
    assert sn(torch.randn(2, 1, 28, 28), (3,) * 6).shape == (2, 7)
    with pytest.raises(UsageError, match="divisible by 4"):
        create_space("nb201", input_size=30)
