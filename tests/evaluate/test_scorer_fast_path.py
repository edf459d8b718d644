"""Scoring on the fast path (stacked edges, channels_last fast layers) gives the scores of
computing every edge on its own, cell by cell."""

import random

import torch

from efsnas import create_criterion, create_space
from efsnas.evaluate.scorer import SubnetScorer
from efsnas.execution import Execution
from efsnas.supernets import FewShotSupernets


def _nets(stack: bool) -> FewShotSupernets:
    torch.manual_seed(0)
    space = create_space("nb201", C=10, N=1, input_size=16, num_classes=4)
    split = create_criterion("nonlinearity", groups="0,1/2/3", width_divisor=2).split(space)
    nets = FewShotSupernets(split, structure="shared_prefix")
    for m in nets.modules():
        if hasattr(m, "stack"):
            m.stack = stack
    return nets.to(memory_format=torch.channels_last)


def test_fast_scores_equal_edge_by_edge_scores_cell_by_cell():
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(32, 3, 16, 16, generator=g).contiguous(
        memory_format=torch.channels_last), torch.randint(0, 4, (32,), generator=g))
        for _ in range(3)]
    execution = Execution(channels_last=True)
    fast, plain = _nets(True), _nets(False)
    space = fast.space
    rng = random.Random(0)
    cells = [c for c in (space.sample(rng) for _ in range(40))]
    cells += [space.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|"
                          "nor_conv_1x1~1|avg_pool_3x3~2|")]  # three stacked convs at node 0
    together = SubnetScorer(fast, batches, execution=execution)
    scores = [together.score_with_loss(c) for c in cells]
    for c, (top1, loss) in zip(cells, scores):
        alone = SubnetScorer(plain, batches, execution=execution).score_with_loss(c)
        assert top1 == alone[0], space.format(c)
        assert abs(loss - alone[1]) < 1e-5, space.format(c)
    assert len({round(lo, 6) for _, lo in scores}) > 10  # the cells do score differently
