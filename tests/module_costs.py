"""Costs of a built module measured with forward hooks: what the spaces' FLOPs must equal."""

import torch
from torch import nn


def count_macs(net: nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of conv and linear layers per image of `x` (a batch of one)."""
    macs = 0

    def hook(m, _inp, out):
        nonlocal macs
        if isinstance(m, nn.Conv2d):
            kh, kw = m.kernel_size
            macs += out[0].numel() * (m.in_channels // m.groups) * kh * kw
        else:
            macs += m.in_features * m.out_features

    handles = [m.register_forward_hook(hook) for m in net.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in handles:
            h.remove()
    return macs
