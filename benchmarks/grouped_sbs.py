"""Experiment (not used by efsnas): an SBS step's K subnets run as ONE grouped network.

An SBS step runs one narrow subnet of every supernet on the same batch, one after the other. The
idea measured here: run the K subnets side by side along the channels (subnet g in channels
[g*c, (g+1)*c)), so every layer is one call: grouped convolutions with the K weights stacked,
batch norm / ReLU / pooling over all channels at once, the K classifiers as one einsum. A cell
edge whose operation differs between subnets runs each operation for the groups that pick it
(a grouped convolution on their channels, zero-padded back to all channels; skip and pooling
masked per group). Same function as one by one (checked here in float64: logits and gradients).

Result on the 2-core CPU (benchmarks/results/grouped_sbs.json): a win only when the K cells
agree edge by edge (identical cells), a loss for the draws SBS actually makes (cells drawn
independently per subspace agree on an edge's operation with probability 1/25 when all live),
because an edge with three different operations costs three calls either way, plus the
padding, masking and slicing. So efsnas keeps running SBS draws one by one.

    python benchmarks/grouped_sbs.py [--rounds 3] [--steps 8] [--out benchmarks/results/grouped_sbs.json]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from efsnas import create_criterion, create_space
from efsnas.execution import tune_cpu_allocator
from efsnas.layers import batch_stat_norm
from efsnas.sampling import create_sampler
from efsnas.spaces.nb201.cell import CONV_OPS, EDGES, NONE, OPS, POOL, SKIP, Cell
from efsnas.spaces.nb201.network import _EDGES_FROM, Cell201, NB201Supernet, ResidualReduction


def forward_grouped(nets: Sequence[NB201Supernet], cells: Sequence[Cell],
                    x: torch.Tensor) -> list[torch.Tensor]:
    """Logits of subnet cells[g] of supernet nets[g], all on the batch x, as one network."""
    G = len(nets)
    bodies = [n.body for n in nets]
    lives = [n._live(tuple(c)) for n, c in zip(nets, cells)]
    conv, norm = bodies[0].stem
    h = _norm(F.conv2d(x, torch.cat([b.stem[0].weight for b in bodies]), None, conv.stride,
                       conv.padding), norm)
    for i, layer in enumerate(bodies[0].layers):
        mods = [b.layers[i] for b in bodies]
        h = (_cell(h, mods, cells, lives) if isinstance(layer, Cell201)
             else _reduction(h, mods))
    h = torch.relu(_norm(h, bodies[0].lastact[0]))
    pooled = h.mean((2, 3)).unflatten(1, (G, -1))  # (B, G, c)
    weight = torch.stack([b.classifier.weight for b in bodies])  # (G, classes, c)
    bias = torch.stack([b.classifier.bias for b in bodies])
    return list((torch.einsum("bgc,gkc->gbk", pooled, weight) + bias.unsqueeze(1)).unbind(0))


def _norm(x: torch.Tensor, bn: nn.Module) -> torch.Tensor:
    return batch_stat_norm(x, bn.eps)


def _relu_conv_bn(x: torch.Tensor, ops: Sequence[nn.Sequential], groups: int) -> torch.Tensor:
    """ReLU -> grouped convolution (the ops' weights stacked) -> batch norm."""
    conv = ops[0][1]
    w = torch.cat([op[1].weight for op in ops])
    return _norm(F.conv2d(torch.relu(x), w, None, conv.stride, conv.padding, 1, groups), ops[0][2])


def _reduction(x: torch.Tensor, mods: Sequence[ResidualReduction]) -> torch.Tensor:
    G = len(mods)
    h = _relu_conv_bn(x, [m.conv_a for m in mods], G)
    h = _relu_conv_bn(h, [m.conv_b for m in mods], G)
    pool, conv = mods[0].shortcut
    s = F.conv2d(pool(x), torch.cat([m.shortcut[1].weight for m in mods]), None, conv.stride,
                 conv.padding, 1, G)
    return s + h


_MASKS: dict[tuple, torch.Tensor] = {}


def _mask(users: tuple[int, ...], G: int, c: int, like: torch.Tensor) -> torch.Tensor:
    """(1, G*c, 1, 1): ones on the channels of the groups in `users`."""
    key = (users, G, c, like.dtype, like.device)
    m = _MASKS.get(key)
    if m is None:
        m = torch.zeros(G, c, dtype=like.dtype, device=like.device)
        m[list(users)] = 1
        m = m.view(1, G * c, 1, 1)
        _MASKS[key] = m
    return m


def _cell(x: torch.Tensor, mods: Sequence[Cell201], cells: Sequence[Cell],
          lives: Sequence[frozenset[int]]) -> torch.Tensor:
    G = len(mods)
    c = x.shape[1] // G
    # each node's incoming contributions, (B, G*c, H, W), with a channel mask or None (all)
    parts: dict[int, list[tuple[torch.Tensor, torch.Tensor | None]]] = {1: [], 2: [], 3: []}
    node: torch.Tensor | None = x
    for src, out_edges in enumerate(_EDGES_FROM):
        if src:
            node = _sum(parts[src])
            if node is None:
                continue
        relu = pooled = None
        for e in out_edges:
            ops = [cells[g][e] if e in lives[g] else NONE for g in range(G)]
            dst = parts[EDGES[e][0]]
            for op in sorted(set(ops) - {NONE}):
                users = tuple(g for g in range(G) if ops[g] == op)
                mask = None if len(users) == G else _mask(users, G, c, node)
                if op in CONV_OPS:
                    if relu is None:
                        relu = torch.relu(node)
                    for a, b in _runs(users):
                        dst.append((_edge_conv(relu, mods, e, OPS[op], a, b, G), None))
                elif op == SKIP:
                    dst.append((node, mask))
                else:  # POOL, parameter-free: one pooling serves every edge
                    if pooled is None:
                        pooled = mods[users[0]].edges[str(e)][OPS[POOL]](node)
                    dst.append((pooled, mask))
    out = _sum(parts[3])
    # groups whose cell is disconnected got zero contributions; all disconnected: zeros
    return out if out is not None else torch.zeros_like(x)


def _runs(users: tuple[int, ...]) -> list[tuple[int, int]]:
    """`users` (sorted group indices) as maximal runs of consecutive groups, (first, last)."""
    runs: list[list[int]] = []
    for g in users:
        if runs and runs[-1][1] == g - 1:
            runs[-1][1] = g
        else:
            runs.append([g, g])
    return [(a, b) for a, b in runs]


def _edge_conv(relu: torch.Tensor, mods: Sequence[Cell201], e: int, name: str, a: int, b: int,
               G: int) -> torch.Tensor:
    """The ReLU-conv-BN edge `e` of groups a..b (one grouped convolution on their channels),
    zero-padded to all G groups' channels when some group does not run it."""
    c = relu.shape[1] // G
    ops = [mods[g].edges[str(e)][name] for g in range(a, b + 1)]
    conv = ops[0][1]
    x = relu if b - a + 1 == G else relu[:, a * c:(b + 1) * c]
    y = F.conv2d(x, torch.cat([op[1].weight for op in ops]), None, conv.stride, conv.padding, 1,
                 b - a + 1)
    y = _norm(y, ops[0][2])
    return y if b - a + 1 == G else F.pad(y, (0, 0, 0, 0, a * c, (G - 1 - b) * c))


def _sum(parts: list[tuple[torch.Tensor, torch.Tensor | None]]) -> torch.Tensor | None:
    acc = None
    for t, mask in parts:
        if acc is None:
            acc = t if mask is None else t * mask
        else:
            acc = acc + t if mask is None else torch.addcmul(acc, t, mask)
    return acc


def sequential(nets, cells, x, y) -> None:
    for n, c in zip(nets, cells):
        F.cross_entropy(n(x, c), y).backward()


def grouped(nets, cells, x, y) -> None:
    torch.stack([F.cross_entropy(lo, y) for lo in forward_grouped(nets, cells, x)]).sum().backward()


def check(seed: int = 0) -> float:
    """Largest difference (logits; gradients relative to their largest) between grouped and
    one by one, float64, random SBS draws."""
    torch.manual_seed(seed)
    nets, sampler = build(C=12, hw=16, N=2)
    nets = [n.double() for n in nets]
    x, y = torch.randn(16, 3, 16, 16, dtype=torch.float64), torch.randint(0, 10, (16,))
    worst = 0.0
    for step in range(6):
        cells = [c for _, c in sampler.draw(step)]
        grads = []
        for fn in (sequential, grouped):
            for n in nets:
                n.zero_grad(set_to_none=True)
            fn(nets, cells, x, y)
            grads.append({(i, k): p.grad.clone() for i, n in enumerate(nets)
                          for k, p in n.named_parameters() if p.grad is not None})
        assert grads[0].keys() == grads[1].keys()
        with torch.no_grad():
            a = forward_grouped(nets, cells, x)
            b = [n(x, c) for n, c in zip(nets, cells)]
        worst = max([worst] + [(u - v).abs().max().item() for u, v in zip(a, b)]
                    + [((grads[1][k] - g).abs().max() / g.abs().max().clamp(min=1e-12)).item()
                       for k, g in grads[0].items()])
    return worst


def build(C: int, hw: int, N: int = 5):
    space = create_space("nb201", C=C, N=N, input_size=hw, num_classes=10)
    split = create_criterion("nonlinearity", groups="0,1/2/3", width_divisor=3).split(space)
    nets = [space.build_supernet(width_divisor=3) for _ in range(len(split))]
    return nets, create_sampler("sbs", split, seed=0)


def measure(C: int, hw: int, same: bool, rounds: int, steps: int) -> dict:
    torch.manual_seed(0)
    nets, sampler = build(C, hw)
    nets = [n.to(memory_format=torch.channels_last) for n in nets]
    x = torch.randn(64, 3, hw, hw).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (64,))
    draws = [[c for _, c in sampler.draw(s)] for s in range(steps)]
    if same:  # every subnet the first draw's first cell
        draws = [[d[0]] * len(d) for d in draws]
    ms = {"sequential": [], "grouped": []}
    for fn in (sequential, grouped):  # warm-up
        fn(nets, draws[0], x, y)
    for _ in range(rounds):  # interleaved rounds
        for name, fn in (("sequential", sequential), ("grouped", grouped)):
            t0 = time.perf_counter()
            for cells in draws:
                for n in nets:
                    n.zero_grad(set_to_none=True)
                fn(nets, cells, x, y)
            ms[name].append((time.perf_counter() - t0) / steps * 1e3)
    return {"C": C, "input": hw, "cells": "identical" if same else "SBS draws",
            "ms_per_step": ms, "grouped_over_sequential": min(ms["grouped"]) / min(ms["sequential"])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--out", default="benchmarks/results/grouped_sbs.json")
    a = p.parse_args()
    tune_cpu_allocator()
    worst = check()
    print(f"grouped vs one by one, float64: largest difference {worst:.2e}")
    rows = []
    for C, hw in ((12, 16), (16, 32)):
        for same in (False, True):
            r = measure(C, hw, same, a.rounds, a.steps)
            rows.append(r)
            print(f"C={C}/3 at {hw}x{hw}, {r['cells']:9s}: sequential "
                  f"{min(r['ms_per_step']['sequential']):6.1f} ms, grouped "
                  f"{min(r['ms_per_step']['grouped']):6.1f} ms "
                  f"({r['grouped_over_sequential']:.2f}x the time)", flush=True)
    with open(a.out, "w") as f:
        json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(),
                   "float64_max_difference": worst, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
