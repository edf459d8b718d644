"""Layers with CPU fast paths for narrow channels_last tensors.

Few-shot supernets are narrow (C=16 divided by G gives 5 channels), and on CPU PyTorch's own
channels_last kernels for batch norm and average pooling vectorise over channels, so with a
channel count that is not a multiple of 8 they are up to 11x slower than they need to be
(benchmarks/layers.py measures each case). The layers below compute the same function a faster
way on CPU channels_last inputs and fall back to PyTorch's own kernels everywhere else (CUDA,
contiguous inputs, channel counts that are multiples of 8, training with affine batch norm at
more than 8 channels).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable


def _cpu_channels_last(x: torch.Tensor) -> bool:
    return (x.device.type == "cpu" and x.dim() == 4 and x.dtype == torch.float32
            and x.is_contiguous(memory_format=torch.channels_last))


def _tiles(pixels: int, channels: int) -> int:
    """How many pixels to lay side by side per row so a row holds at least 64 values."""
    k = 1
    while pixels % (2 * k) == 0 and channels * k < 64:
        k *= 2
    return k


def _rows(t: torch.Tensor, k: int) -> torch.Tensor:
    """A channels_last (B, C, H, W) tensor as a (B*H*W / k, k*C) matrix, k pixels per row: a
    view, no copy. Per-channel vectors repeated k times broadcast along wide rows, which
    vectorise; a 5-wide row does not (that is what makes PyTorch's kernel slow here)."""
    return t.permute(0, 2, 3, 1).reshape(-1, k * t.shape[1])


_SUMMERS: dict[tuple, torch.Tensor] = {}


def _summer(k: int, c: int, like: torch.Tensor) -> torch.Tensor:
    """(k*c, k*c) 0/1 matrix that turns a row's column sums into per-channel sums repeated k
    times: one small matmul instead of a view, a sum and a repeat."""
    key = (k, c, like.dtype, like.device)
    m = _SUMMERS.get(key)
    if m is None:
        # a normal tensor even when first needed while scoring: training saves it for backward
        with torch.inference_mode(False):
            m = _SUMMERS[key] = torch.kron(torch.ones(k, k), torch.eye(c)).to(like)
    return m


def _per_channel_mean(rows: torch.Tensor, summer: torch.Tensor, n: int) -> torch.Tensor:
    """Mean over the n pixels of each channel, repeated to match a row of `rows`."""
    return (rows.sum(0) @ summer).div_(n)


def _nchw(rows: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    b, c, h, w = like.shape
    return rows.view(b, h, w, c).permute(0, 3, 1, 2)


class _BatchStatNormRows(torch.autograd.Function):
    """Batch norm from batch statistics, no affine: y = (x - mean) / sqrt(var + eps) per channel,
    computed on the wide-row view of a channels_last tensor; the variance is two-pass. Also
    returns the per-channel mean and biased variance (no gradient), for running statistics."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, eps: float):
        c = x.shape[1]
        n = x.numel() // c
        k = _tiles(n, c)
        rows = _rows(x, k)
        summer = _summer(k, c, x)
        mean = _per_channel_mean(rows, summer, n)
        centred = rows - mean
        var = _per_channel_mean(centred * centred, summer, n)
        rstd = (var + eps).rsqrt_()
        y = centred.mul_(rstd)
        ctx.save_for_backward(y, rstd, summer)
        ctx.k, ctx.n = k, n
        stats = mean[:c].clone(), var[:c].clone()
        ctx.mark_non_differentiable(*stats)
        return _nchw(y, x), *stats

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor, *_):
        y, rstd, summer = ctx.saved_tensors
        g = _rows(grad.contiguous(memory_format=torch.channels_last), ctx.k)
        n = ctx.n
        # d/dx of normalisation: rstd * (g - mean(g) - y * mean(g * y)), per channel, written
        # as two fused multiply-adds over the tensor
        gx = torch.addcmul(_per_channel_mean(g, summer, n).mul_(rstd).neg_(), g, rstd)
        gx.addcmul_(y, _per_channel_mean(g * y, summer, n).mul_(rstd).neg_())
        return _nchw(gx, grad), None


def _batch_stat_norm_inference(x: torch.Tensor, eps: float) -> torch.Tensor:
    """The forward of _BatchStatNormRows with nothing kept for a backward, in fewer passes over
    the tensor: sums of x and x*x, then one fused multiply-add."""
    n = x.numel() // x.shape[1]
    k = _tiles(n, x.shape[1])
    rows = _rows(x, k)
    summer = _summer(k, x.shape[1], x)
    mean = _per_channel_mean(rows, summer, n)
    var = _per_channel_mean(rows * rows, summer, n).sub_(mean * mean).clamp_(min=0)
    rstd = var.add_(eps).rsqrt_()
    return _nchw(torch.addcmul(mean.mul_(rstd).neg_(), rows, rstd), x)


def batch_stat_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    """Batch norm from batch statistics, no affine, no running statistics, any channel count."""
    if x.shape[1] % 8 and _cpu_channels_last(x):
        if torch.is_grad_enabled() and x.requires_grad:
            return _BatchStatNormRows.apply(x, eps)[0]
        return _batch_stat_norm_inference(x, eps)
    return F.batch_norm(x, None, None, training=True, eps=eps)


class BatchNorm2d(nn.BatchNorm2d):
    """nn.BatchNorm2d with fast paths for CPU channels_last inputs whose channel count is not a
    multiple of 8: without affine parameters and running statistics (above); with them, where
    no gradient is taken (scoring, its BN recalibration, testing) and in training below 8
    channels. Training at 9 or more channels keeps PyTorch's kernel, as fast or faster there."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.affine and not self.track_running_stats:
            return batch_stat_norm(x, self.eps)  # picks the fast path or PyTorch's kernel
        # (one value per channel: PyTorch's kernel, which says why it cannot train on it)
        if not (x.shape[1] % 8 and _cpu_channels_last(x)) or x.numel() <= x.shape[1]:
            return super().forward(x)
        if not self._needs_grad(x):
            return self._forward_no_grad(x)
        if x.shape[1] < 8 and (self.training or self.running_mean is None):
            return self._forward_narrow(x)
        return super().forward(x)

    def _needs_grad(self, x: torch.Tensor) -> bool:
        return torch.is_grad_enabled() and (
            x.requires_grad or (self.affine and (self.weight.requires_grad
                                                 or self.bias.requires_grad)))

    def _forward_no_grad(self, x: torch.Tensor) -> torch.Tensor:
        """One fused multiply-add per element, with the running statistics (eval) or the batch's
        (two-pass), which then update the running ones by PyTorch's rule: the momentum, or with
        `momentum=None` the cumulative average, of batch means and unbiased variances."""
        c = x.shape[1]
        n = x.numel() // c
        k = _tiles(n, c)
        rows = _rows(x, k)
        if not self.training and self.running_mean is not None:
            mean, var = self.running_mean.repeat(k), self.running_var.repeat(k)
        else:
            summer = _summer(k, c, x)
            mean = _per_channel_mean(rows, summer, n)
            centred = rows - mean
            var = _per_channel_mean(centred.mul_(centred), summer, n)
            del centred
            if self.training and self.track_running_stats:
                self._update_running_stats(mean[:c], var[:c], n)
        scale = var.add(self.eps).rsqrt_()
        if self.affine:
            scale.mul_(self.weight.repeat(k))
        shift = torch.addcmul(self.bias.repeat(k) if self.affine else torch.zeros_like(mean),
                              mean, scale, value=-1)
        return _nchw(torch.addcmul(shift, rows, scale), x)

    def _forward_narrow(self, x: torch.Tensor) -> torch.Tensor:
        """Training below 8 channels, where PyTorch's kernel is slowest (3-4x): the normalisation
        above, the affine parameters on its rows (autograd takes their gradients)."""
        y, mean, var = _BatchStatNormRows.apply(x, self.eps)
        if self.training and self.track_running_stats:
            self._update_running_stats(mean, var, x.numel() // x.shape[1])
        if not self.affine:
            return y
        k = _tiles(x.numel() // x.shape[1], x.shape[1])
        return _nchw(torch.addcmul(self.bias.repeat(k), _rows(y, k), self.weight.repeat(k)), x)

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, n: int) -> None:
        self.num_batches_tracked.add_(1)
        factor = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                  else self.momentum)
        self.running_mean.mul_(1 - factor).add_(mean, alpha=factor)
        self.running_var.mul_(1 - factor).add_(var * (n / max(n - 1, 1)), alpha=factor)


class _BoxMean3x3(torch.autograd.Function):
    """y = box_sum(x) * r, with box_sum the 3x3 sum over zero padding (a depthwise convolution
    with an all-ones kernel) and r each position's reciprocal cell count. box_sum is its own
    transpose, so the input gradient is box_sum(grad * r): two forward convolutions, no
    convolution backward (whose oneDNN kernel is the slower one here)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, reciprocal: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(reciprocal)
        return _box_sum(x).mul_(reciprocal)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        (reciprocal,) = ctx.saved_tensors
        return _box_sum((grad * reciprocal).contiguous(memory_format=torch.channels_last)), None


def _box_sum(x: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    return F.conv2d(x, x.new_ones(c, 1, 3, 3), padding=1, groups=c)


class AvgPool3x3(nn.AvgPool2d):
    """3x3 average pooling, stride 1, padding 1, padded cells not counted (NAS-Bench-201's).

    On CPU channels_last inputs of at least 16x16 pixels it is a 3x3 box sum (a depthwise
    convolution with a fixed all-ones kernel) times the reciprocal of each position's cell
    count: the same numbers, 1.7-3.6x faster than PyTorch's pooling kernel there.
    """

    def __init__(self):
        super().__init__(3, stride=1, padding=1, count_include_pad=False)
        self._reciprocal_counts: dict[tuple, torch.Tensor] = {}

    def _reciprocal(self, x: torch.Tensor) -> torch.Tensor:
        key = (x.shape[-2], x.shape[-1], x.dtype, x.device)
        r = self._reciprocal_counts.get(key)
        if r is None:
            with torch.inference_mode(False):  # cached: also used by training after scoring
                ones = torch.ones(1, 1, *key[:2], dtype=x.dtype, device=x.device)
                counts = F.avg_pool2d(ones, 3, 1, 1, count_include_pad=False, divisor_override=1)
                r = self._reciprocal_counts[key] = counts.reciprocal()
        return r

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # below 16x16 pixels PyTorch's kernel is as fast (benchmarks/layers.py)
        if not _cpu_channels_last(x) or x.shape[-2] * x.shape[-1] < 256:
            return super().forward(x)
        return _BoxMean3x3.apply(x, self._reciprocal(x))


def to_plain(net: nn.Module) -> nn.Module:
    """A copy of `net` with the fast-path layers above swapped for PyTorch's own (state copied).

    The fast paths call autograd Functions and `super().forward`, which torch.jit.script and
    the ONNX exporter cannot follow; the plain layers compute the same function.
    """
    net = copy.deepcopy(net)
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            plain = _plain_layer(child)
            if plain is not None:
                setattr(parent, name, plain)
    return net


def _plain_layer(m: nn.Module) -> nn.Module | None:
    if isinstance(m, BatchNorm2d):
        plain: nn.Module = nn.BatchNorm2d(m.num_features, eps=m.eps, momentum=m.momentum,
                                          affine=m.affine,
                                          track_running_stats=m.track_running_stats)
        like = next((t for t in m.state_dict().values() if t.is_floating_point()), None)
        if like is not None:  # keep the original's device and dtype
            plain.to(device=like.device, dtype=like.dtype)
        plain.load_state_dict(m.state_dict())
    elif isinstance(m, AvgPool3x3):
        plain = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    else:
        return None
    return plain.train(m.training)
