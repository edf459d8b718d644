"""The CPU fast paths compute what PyTorch's own layers compute, values and gradients."""

import random

import pytest
import torch
import torch.nn.functional as F

from efsnas.layers import AvgPool3x3, BatchNorm2d
from efsnas.spaces.nb201.network import NB201Supernet


def _pair(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g) * 3 + 1.5  # off-centre, so the mean matters
    return (x.clone(memory_format=torch.channels_last).requires_grad_(),
            x.clone().requires_grad_())


@pytest.mark.parametrize("shape", [(8, 5, 12, 12), (4, 10, 7, 9), (16, 20, 3, 3), (2, 3, 1, 1)])
def test_batch_norm_fast_path_matches_pytorch(shape):
    x_cl, x_ref = _pair(shape)
    bn = BatchNorm2d(shape[1], affine=False, track_running_stats=False)
    y = bn(x_cl)
    assert "_BatchStatNormRows" in type(y.grad_fn).__name__  # the fast path ran
    ref = F.batch_norm(x_ref, None, None, training=True, eps=bn.eps)
    grad = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    y.backward(grad)
    ref.backward(grad)
    torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(x_cl.grad, x_ref.grad, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("kwargs,shape", [
    (dict(affine=False, track_running_stats=False), (4, 16, 6, 6)),  # multiple of 8: PyTorch's
    (dict(affine=True, track_running_stats=True), (4, 24, 6, 6)),
])
def test_batch_norm_falls_back_where_pytorch_is_right(kwargs, shape):
    x_cl, x_ref = _pair(shape)
    bn = BatchNorm2d(shape[1], **kwargs)
    assert "NativeBatchNorm" in type(bn(x_cl).grad_fn).__name__
    assert "NativeBatchNorm" in type(bn(x_ref).grad_fn).__name__  # contiguous input


def _bn_pair(c: int, momentum, seed: int = 4):
    """An efsnas BatchNorm2d and a torch one with the same random affine parameters and
    running statistics."""
    g = torch.Generator().manual_seed(seed)
    fast, ref = BatchNorm2d(c, momentum=momentum), torch.nn.BatchNorm2d(c, momentum=momentum)
    state = {"weight": torch.rand(c, generator=g) + 0.5, "bias": torch.randn(c, generator=g),
             "running_mean": torch.randn(c, generator=g),
             "running_var": torch.rand(c, generator=g) + 0.5,
             "num_batches_tracked": torch.tensor(3)}
    fast.load_state_dict(state)
    ref.load_state_dict(state)
    return fast, ref


def _assert_same_state(fast, ref):
    for (name, a), b in zip(ref.state_dict().items(), fast.state_dict().values()):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("shape", [(8, 5, 12, 12), (4, 6, 7, 9), (2, 4, 16, 16), (3, 7, 1, 1)])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_narrow_affine_batch_norm_trains_as_pytorch_does(shape, momentum):
    """Below 8 channels, training with affine parameters and running statistics (the MobileNet
    space's batch norm) takes the fast path: output, input and parameter gradients, running
    statistics and their count as PyTorch's."""
    fast, ref = _bn_pair(shape[1], momentum)
    for step in range(3):
        x_cl, x_ref = _pair(shape, seed=step)
        y, r = fast(x_cl), ref(x_ref)
        assert "NativeBatchNorm" not in type(y.grad_fn).__name__  # the fast path ran
        grad = torch.randn(shape, generator=torch.Generator().manual_seed(10 + step))
        y.backward(grad)
        r.backward(grad)
        torch.testing.assert_close(y, r, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(x_cl.grad, x_ref.grad, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(fast.weight.grad, ref.weight.grad, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(fast.bias.grad, ref.bias.grad, atol=1e-4, rtol=1e-4)
    _assert_same_state(fast, ref)


def test_affine_batch_norm_with_gradients_elsewhere_is_pytorchs():
    """With a gradient: from 9 channels (as fast there), and in eval mode, PyTorch's kernel."""
    wide, _ = _bn_pair(12, momentum=0.1)
    x_cl, _ = _pair((4, 12, 6, 6))
    assert "NativeBatchNorm" in type(wide(x_cl).grad_fn).__name__
    narrow, _ = _bn_pair(5, momentum=0.1)
    narrow.eval()
    x_cl, _ = _pair((4, 5, 6, 6))
    assert "NativeBatchNorm" in type(narrow(x_cl).grad_fn).__name__


def _no_pytorch_batch_norm(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("PyTorch's batch norm ran, not the fast path")
    monkeypatch.setattr(F, "batch_norm", refuse)


@pytest.mark.parametrize("shape,centre", [((500, 4, 8, 8), 2.0), ((6, 12, 5, 5), 30.0),
                                          ((3, 20, 2, 2), -4.0)])
@pytest.mark.parametrize("momentum", [None, 0.1])
def test_affine_batch_norm_recalibrates_and_evaluates_as_pytorch_does(shape, centre, momentum,
                                                                     monkeypatch):
    """BN recalibration before scoring (train mode under inference mode; with momentum=None the
    cumulative average), then eval mode with the re-estimated statistics, on the fast path;
    inputs with large means too."""
    fast, ref = _bn_pair(shape[1], momentum=momentum)
    for m in (fast, ref):
        m.reset_running_stats()
    g = torch.Generator().manual_seed(5)
    batches = [(torch.randn(*shape, generator=g) * 2 + centre)
               .contiguous(memory_format=torch.channels_last) for _ in range(3)]
    with torch.inference_mode():
        expected = [ref(x.contiguous()) for x in batches]
        ref.eval()
        expected_eval = ref(batches[0].contiguous())
        _no_pytorch_batch_norm(monkeypatch)
        for x, want in zip(batches, expected):
            torch.testing.assert_close(fast(x), want, atol=1e-4, rtol=1e-4)
        _assert_same_state(fast, ref)
        fast.eval()
        torch.testing.assert_close(fast(batches[0]), expected_eval, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("shape", [(8, 5, 16, 16), (4, 10, 17, 19), (3, 16, 32, 9)])
def test_avg_pool_fast_path_matches_pytorch(shape):
    x_cl, x_ref = _pair(shape)
    pool = AvgPool3x3()
    y = pool(x_cl)
    assert "_BoxMean3x3" in type(y.grad_fn).__name__  # the fast path ran
    ref = F.avg_pool2d(x_ref, 3, stride=1, padding=1, count_include_pad=False)
    grad = torch.randn(shape, generator=torch.Generator().manual_seed(2))
    y.backward(grad)
    ref.backward(grad)
    torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(x_cl.grad, x_ref.grad, atol=1e-5, rtol=1e-5)
    # contiguous input: PyTorch's kernel
    assert "AvgPool" in type(pool(x_ref).grad_fn).__name__


def test_supernet_in_channels_last_matches_contiguous():
    """A narrow supernet step gives the same loss and gradients in both memory formats."""
    torch.manual_seed(0)
    net = NB201Supernet(C=5, N=1, num_classes=4)
    net_cl = NB201Supernet(C=5, N=1, num_classes=4).to(memory_format=torch.channels_last)
    net_cl.load_state_dict(net.state_dict())
    x = torch.randn(6, 3, 16, 16)  # stage 1 at 16x16: the pooling fast path runs too
    y = torch.randint(0, 4, (6,))
    rng = random.Random(0)
    for _ in range(4):
        cell = tuple(rng.randrange(1, 5) for _ in range(6))  # no none: every op runs
        for m in (net, net_cl):
            m.zero_grad()
        ref = F.cross_entropy(net(x, cell), y)
        ref.backward()
        loss_cl = F.cross_entropy(net_cl(x.contiguous(memory_format=torch.channels_last), cell), y)
        loss_cl.backward()
        torch.testing.assert_close(loss_cl, ref, atol=1e-5, rtol=1e-5)
        _assert_same_grads(net_cl, net)


@pytest.mark.parametrize("mode,device,space_hint,expected", [
    ("auto", "cpu", True, True),     # a space measured faster in channels_last on CPU
    ("auto", "cpu", False, False),   # a plug-in that says nothing: contiguous on CPU
    ("auto", "cuda", False, True),   # always on CUDA
    ("off", "cuda", True, False),
    ("on", "cpu", False, True),
])
def test_memory_format_resolution(mode, device, space_hint, expected):
    from efsnas import create_space
    from efsnas.app.config import RunConfig
    from efsnas.execution import channels_last_for

    cfg = RunConfig.model_validate({"train": {"channels_last": mode}})
    space = create_space("nb201", C=4, N=1)
    space.channels_last_on_cpu = space_hint  # instance attribute: this test's space only
    assert channels_last_for(cfg.train.channels_last, space, torch.device(device)) is expected


@pytest.mark.parametrize("channels_last", [False, True])
def test_stacked_edges_match_edge_by_edge(channels_last):
    """Convolutions leaving one node run stacked (one ReLU, one convolution per kernel size, one
    batch norm) and poolings leaving one node run once: same loss and gradients as computing
    each edge on its own."""
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = NB201Supernet(C=5, N=1, num_classes=4).to(memory_format=fmt)
    plain = NB201Supernet(C=5, N=1, num_classes=4).to(memory_format=fmt)
    plain.load_state_dict(net.state_dict())
    for layer in plain.body.layers:
        if hasattr(layer, "stack"):
            layer.stack = False
    x = torch.randn(6, 3, 16, 16).contiguous(memory_format=fmt)
    y = torch.randint(0, 4, (6,))
    # node 0 feeds edges 0, 1, 3 and node 1 feeds edges 2, 4: three 3x3 convolutions from node 0,
    # mixed kernels, pools from one node, and a random mix
    cells = [(3, 3, 2, 3, 2, 1), (2, 3, 3, 2, 3, 4), (4, 4, 1, 4, 4, 3), (3, 4, 2, 2, 0, 3)]
    rng = random.Random(1)
    cells += [tuple(rng.randrange(5) for _ in range(6)) for _ in range(4)]
    for cell in cells:
        for m in (net, plain):
            m.zero_grad()
        loss = F.cross_entropy(net(x, cell), y)
        loss.backward()
        ref = F.cross_entropy(plain(x, cell), y)
        ref.backward()
        torch.testing.assert_close(loss, ref, atol=1e-5, rtol=1e-5)
        _assert_same_grads(net, plain)


def test_fast_paths_train_after_scoring_at_a_new_width():
    """Tensors the fast paths cache (batch-norm summers, pooling counts) are first built while
    scoring, under inference mode, and must still serve a training step afterwards."""
    net = NB201Supernet(C=7, N=1, num_classes=3).to(memory_format=torch.channels_last)
    x = torch.randn(4, 3, 16, 16).contiguous(memory_format=torch.channels_last)
    cell = (3, 3, 4, 3, 4, 1)  # stacked convolutions (21 channels) and pooling at 16x16
    with torch.inference_mode():
        scored = net(x, cell)
    loss = F.cross_entropy(net(x, cell), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    torch.testing.assert_close(net(x, cell).detach(), scored)
    assert all(p.grad is not None for p in net.body.stem.parameters())


@pytest.mark.parametrize("shape,centre", [((8, 5, 12, 12), 1.5), ((4, 10, 16, 16), 20.0),
                                          ((16, 20, 3, 3), -4.0)])
def test_batch_norm_inference_path_matches_pytorch(shape, centre):
    """Scoring normalises in fewer passes (one-pass variance): the same numbers as PyTorch's
    batch norm, also on inputs whose mean is large against their spread."""
    g = torch.Generator().manual_seed(3)
    x = (torch.randn(*shape, generator=g) + centre).contiguous(memory_format=torch.channels_last)
    bn = BatchNorm2d(shape[1], affine=False, track_running_stats=False)
    ref = F.batch_norm(x.contiguous(), None, None, training=True, eps=bn.eps)
    with torch.inference_mode():
        fast = bn(x)
    torch.testing.assert_close(fast, ref, atol=1e-4, rtol=1e-4)


def _assert_same_grads(got: torch.nn.Module, ref: torch.nn.Module) -> None:
    """Same parameters with a gradient, and equal gradients, in two copies of one network."""
    for (name, p), q in zip(ref.named_parameters(), got.parameters()):
        if p.grad is None:
            assert q.grad is None, name
        else:
            torch.testing.assert_close(q.grad, p.grad, atol=1e-4, rtol=1e-3, msg=name)
