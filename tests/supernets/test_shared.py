"""Few-shot supernets with shared parts: the authors' shared-prefix routing, checked against
hand-computed copies, and every sharing level against its stand-alone extraction."""

import pytest
import torch

from efsnas import create_criterion, create_space
from efsnas.supernets import FewShotSupernets

CONV3, NONE = 3, 0
# edges 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2
COUNT1 = (NONE, NONE, NONE, CONV3, NONE, NONE)     # 3<-0 holds one conv
COUNT2 = (CONV3, NONE, NONE, NONE, CONV3, NONE)    # 3<-1<-0: two convs
COUNT3 = (CONV3, NONE, CONV3, NONE, NONE, CONV3)   # 3<-2<-1<-0: three convs

# METHOD section 4 at N=5, thresholds 15/20: acc after cell j is j * count; copy 0 while
# acc <= 15, copy 1 while acc <= 20, copy 2 above; stage-1 cells (1..5) shared.
#   count 1: acc 1..15                          -> copy 0 everywhere
#   count 2: cells 6..10 acc 12,14,16,18,20     -> 0,0,1,1,1; cells 11..15 acc 22..30 -> 2
#   count 3: cells 6..10 acc 18,21,24,27,30     -> 1,2,2,2,2; cells 11..15 -> 2
EXPECTED = {
    COUNT1: [0] * 15,
    COUNT2: [0] * 5 + [0, 0, 1, 1, 1] + [2] * 5,
    COUNT3: [0] * 5 + [1, 2, 2, 2, 2] + [2] * 5,
}


@pytest.fixture(scope="module")
def prefix_nets():
    space = create_space("nb201", C=4, N=5, input_size=8)
    split = create_criterion("nonlinearity", width_divisor=1).split(space)
    torch.manual_seed(0)
    return FewShotSupernets(split, structure="shared_prefix")


def _cell_layers(net):
    return [layer for kind, layer in zip(net.kinds, net.layers) if kind == "cell"]


def test_shared_prefix_has_the_authors_copies(prefix_nets):
    net = prefix_nets.supernet(0)
    assert net.thresholds == (15, 20)
    copies = [len(layer) for layer in _cell_layers(net)]
    # stage 1 shared; cell 6 reaches acc 18 at most (copies 0, 1); from cell 7 on, three
    assert copies == [1] * 5 + [2] + [3] * 4 + [3] * 5
    assert len(net.stem) == 1 and all(len(lay) == 1 for kind, lay in zip(net.kinds, net.layers)
                                      if kind == "reduction")


@pytest.mark.parametrize("cell", list(EXPECTED), ids=["count1", "count2", "count3"])
def test_shared_prefix_routes_by_cumulative_count(prefix_nets, cell):
    net = prefix_nets.supernet(0)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        ref = net(x, cell)
        used = []
        for layer in _cell_layers(net):
            # the copy whose weights change the output is the one the cell is routed to
            hits = []
            for copy in layer:
                saved = [p.clone() for p in copy.parameters()]
                for p in copy.parameters():
                    p.add_(1.0)
                if not torch.allclose(net(x, cell), ref):
                    hits.append(copy)
                for p, q in zip(copy.parameters(), saved):
                    p.copy_(q)
            assert len(hits) == 1
            used.append(list(layer).index(hits[0]))
    assert used == EXPECTED[cell]


def test_depth_scaling_of_thresholds():
    space = create_space("nb201", C=4, N=2, input_size=8)
    split = create_criterion("nonlinearity", width_divisor=1).split(space)
    net = FewShotSupernets(split, structure="shared_prefix").supernet(0)
    assert net.thresholds == (6, 8)  # 3N and 4N
    # count 2 at N=2: acc 2, 4 | 6, 8 | 10, 12 -> stage 1 shared, then 0, 1, 2, 2
    assert net.copies_for(COUNT2)[1:] == [0, 0, 0, 0, 1, 0, 2, 2]  # reductions have one copy


@pytest.mark.parametrize("structure", ["shared_head", "shared_trunk", "shared_prefix"])
def test_extracted_subnet_equals_the_shared_supernet(structure):
    space = create_space("nb201", C=4, N=2, input_size=8)
    split = create_criterion("nonlinearity", width_divisor=1).split(space)
    torch.manual_seed(0)
    nets = FewShotSupernets(split, structure=structure)
    x = torch.randn(4, 3, 8, 8)
    for cell in (COUNT1, COUNT2, COUNT3):
        net = nets.extract(cell)
        assert torch.allclose(net(x), nets(x, cell), atol=1e-5)


def test_head_and_trunk_route_by_subspace():
    space = create_space("nb201", C=4, N=1, input_size=8)
    split = create_criterion("nonlinearity", width_divisor=1).split(space)
    for structure, stems in (("shared_head", 3), ("shared_trunk", 1)):
        net = FewShotSupernets(split, structure=structure).supernet(0)
        assert len(net.stem) == stems
        for cell in (COUNT1, COUNT2, COUNT3):
            k = split.route(cell)
            assert net.copies_for(cell) == [min(k, stems - 1)] + [
                k if kind == "cell" else min(k, stems - 1) for kind in net.kinds]


@pytest.mark.parametrize("structure", ["shared_head", "shared_trunk"])
def test_mobilenet_shared_ends_route_by_subspace_and_extract(structure):
    space = create_space("mobilenet", width_mult=0.25, input_size=32, num_classes=10)
    split = create_criterion("nonlinearity").split(space)
    torch.manual_seed(0)
    nets = FewShotSupernets(split, structure=structure)
    sup = nets.supernet(0)
    assert all(nets.supernet(k) is sup for k in range(len(split)))  # one module
    x = torch.randn(2, 3, 32, 32)
    import random

    rng = random.Random(0)
    subnets = [split.sample(k, rng) for k in (0, 3)]
    nets.eval()
    for s in subnets:
        assert torch.allclose(nets.extract(s).eval()(x), nets(x, s), atol=1e-5)
    # shared head: a change to the classifier moves every subspace; a change to subspace 3's
    # own layers moves only subspace 3
    with torch.no_grad():
        before = [nets(x, s) for s in subnets]
        for p in sup.layers[2].parameters():  # copies of subspace 3 (subspace 0 uses base)
            p.add_(0.5)
        after = [nets(x, s) for s in subnets]
    assert torch.allclose(before[0], after[0]) and not torch.allclose(before[1], after[1])
    shared_stem = structure == "shared_trunk"
    assert (not hasattr(sup, "stems")) == shared_stem
    with pytest.raises(Exception, match="no shared_prefix"):
        FewShotSupernets(split, structure="shared_prefix")
