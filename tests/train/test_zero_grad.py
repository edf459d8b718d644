"""`train.zero_grad`: whether weights no subnet of a step touches still get weight decay."""

import pytest
import torch

from efsnas import create_criterion, create_space
from efsnas.supernets import FewShotSupernets
from efsnas.train.step import build_optimizer, train_step

CONV1, CONV3, SKIP = 2, 3, 1


@pytest.mark.parametrize("set_to_none", [True, False])
def test_unsampled_operation_decays_only_with_zeroed_gradients(set_to_none):
    space = create_space("nb201", C=4, N=1, input_size=8)
    nets = FewShotSupernets(create_criterion("oneshot").split(space))
    opt = build_optimizer(nets, lr=0.1, momentum=0.0, nesterov=False, weight_decay=0.1,
                          wd_weights_only=False)
    x, y = torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,))
    uses_1x1 = (CONV1, SKIP, SKIP, SKIP, SKIP, SKIP)
    no_1x1 = (CONV3, SKIP, SKIP, SKIP, SKIP, SKIP)
    weight = nets.supernet(0).body.layers[0].edges["0"]["nor_conv_1x1"][1].weight
    train_step([nets.supernet(0)], [(0, uses_1x1)], x, y, opt, set_to_none=set_to_none)
    before = weight.detach().clone()
    train_step([nets.supernet(0)], [(0, no_1x1)], x, y, opt, set_to_none=set_to_none)
    if set_to_none:
        assert torch.equal(weight, before)
    else:  # gradient 0, so the step is exactly the decay: w - lr * wd * w
        assert torch.allclose(weight, before * (1 - 0.1 * 0.1))
