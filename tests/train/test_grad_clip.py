"""`train.grad_clip`: each supernet module is clipped on its own, every step."""

import torch
import torch.nn.functional as F

from efsnas import create_criterion, create_space
from efsnas.supernets import FewShotSupernets
from efsnas.train.step import build_optimizer, train_step

CELLS = ((3, 1, 2, 3, 0, 1), (2, 2, 1, 4, 3, 3), (1, 3, 3, 0, 2, 2))


def _norm(module) -> float:
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item()


def test_each_supernet_is_clipped_on_its_own_at_every_step():
    torch.manual_seed(0)
    space = create_space("nb201", C=12, N=1, input_size=8)
    nets = FewShotSupernets(create_criterion("nonlinearity", groups="0,1/2/3").split(space))
    modules = [nets.supernet(k) for k in range(len(nets))]
    opt = build_optimizer(nets, lr=0.0, momentum=0.0, nesterov=False, weight_decay=0.0,
                          wd_weights_only=False)
    x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 10, (8,))
    draws = [(k, cell) for k, cell in enumerate(CELLS)]
    for _ in range(2):  # the second step reuses what the first listed
        opt.zero_grad(set_to_none=True)
        for k, cell in draws:  # the unclipped gradients, one backward per draw
            F.cross_entropy(modules[k](x, cell), y).backward()
        unclipped = {k: _norm(modules[k]) for k in range(3)}
        clip = 0.5 * min(unclipped.values())  # every module clipped
        for k in range(3):
            params = [p for p in modules[k].parameters() if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, clip)
        expected = {n: p.grad.clone() for n, p in nets.named_parameters() if p.grad is not None}
        train_step(modules, draws, x, y, opt, grad_clip=clip)
        for k in range(3):  # each at the clip norm, not scaled by the others' norms
            assert abs(_norm(modules[k]) - clip) < 1e-4 * clip
        got = {n: p.grad for n, p in nets.named_parameters() if p.grad is not None}
        assert got.keys() == expected.keys()
        for n, g in expected.items():
            torch.testing.assert_close(got[n], g, rtol=1e-4, atol=1e-7)
