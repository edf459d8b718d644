"""Precise BN: the running statistics re-estimated after training, the weights untouched."""

import torch
from torch import nn

from efsnas.train.standalone import precise_bn


def test_running_statistics_become_the_average_over_the_batches():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    bn = net[1]
    bn.running_mean.fill_(50.0)  # far off, as a collapsed moving average can be
    bn.running_var.fill_(1e-4)
    weights = {k: v.clone() for k, v in net.state_dict().items() if "running" not in k
               and "num_batches" not in k}
    batches = [(torch.randn(8, 3, 6, 6) * (i + 1), None) for i in range(3)]
    precise_bn(net, batches)
    with torch.no_grad():
        feats = [net[0](x) for x, _ in batches]
    torch.testing.assert_close(bn.running_mean, torch.stack(
        [f.mean((0, 2, 3)) for f in feats]).mean(0))
    torch.testing.assert_close(bn.running_var, torch.stack(
        [f.transpose(0, 1).reshape(4, -1).var(1, unbiased=True) for f in feats]).mean(0))
    assert not net.training
    assert all(torch.equal(net.state_dict()[k], v) for k, v in weights.items())
