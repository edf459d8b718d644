"""NAS-Bench-201 cells as plain data: text form, index, liveness, equivalence, counting.

A cell is a tuple of six operation indices, one per edge in the order 1<-0, 2<-0, 2<-1, 3<-0,
3<-1, 3<-2. Everything here is pure Python so it runs on all 15,625 cells in milliseconds.
"""

from __future__ import annotations

from efsnas.errors import UsageError

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NONE, SKIP, CONV1, CONV3, POOL = range(5)
CONV_OPS = frozenset({CONV1, CONV3})
# (to_node, from_node) for each edge, in the NAS-Bench-201 order.
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
# The four input-to-output paths, as edge indices: 3<-0; 3<-1<-0; 3<-2<-0; 3<-2<-1<-0.
PATHS = ((3,), (4, 0), (5, 1), (5, 2, 0))
NUM_CELLS = len(OPS) ** len(EDGES)

Cell = tuple[int, ...]


def parse_cell(text: str) -> Cell:
    """Parse `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`; the error names the malformed part."""
    if not isinstance(text, str):
        raise UsageError(f"a NAS-Bench-201 cell must be a string, got {type(text).__name__}")
    nodes = text.strip().split("+")
    if len(nodes) != 3:
        raise UsageError(
            f"malformed cell {text!r}: expected 3 node groups joined by '+', found {len(nodes)}"
        )
    ops: dict[tuple[int, int], int] = {}
    for node, part in enumerate(nodes, start=1):
        if not (part.startswith("|") and part.endswith("|") and len(part) > 1):
            raise UsageError(f"malformed cell {text!r}: node {node} group {part!r} must be |...|")
        tokens = part[1:-1].split("|")
        if len(tokens) != node:
            raise UsageError(
                f"malformed cell {text!r}: node {node} needs {node} input(s), got {len(tokens)} "
                f"in {part!r}"
            )
        for tok in tokens:
            name, sep, src = tok.partition("~")
            if not sep or not (src.isascii() and src.isdigit()):  # int() refuses '²' etc.
                raise UsageError(f"malformed cell {text!r}: {tok!r} is not of the form op~input")
            if name not in OPS:
                raise UsageError(
                    f"malformed cell {text!r}: unknown operation {name!r} in node {node}; "
                    f"choose from {', '.join(OPS)}"
                )
            src_i = int(src)
            if src_i >= node:
                raise UsageError(
                    f"malformed cell {text!r}: node {node} cannot take input from node {src_i}"
                )
            if (node, src_i) in ops:
                raise UsageError(f"malformed cell {text!r}: node {node} lists input {src_i} twice")
            ops[(node, src_i)] = OPS.index(name)
    return tuple(ops[e] for e in EDGES)


def format_cell(cell: Cell) -> str:
    """The NAS-Bench-201 text form of a cell, e.g.
    '|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...|'."""
    parts = []
    for node in (1, 2, 3):
        toks = [f"{OPS[cell[e]]}~{src}" for e, (dst, src) in enumerate(EDGES) if dst == node]
        parts.append("|" + "|".join(toks) + "|")
    return "+".join(parts)


def live_edges(cell: Cell) -> frozenset[int]:
    """Edges on at least one input-to-output path made only of non-none edges."""
    live: set[int] = set()
    for path in PATHS:
        if all(cell[e] != NONE for e in path):
            live.update(path)
    return frozenset(live)


def is_connected(cell: Cell) -> bool:
    """Whether any path from node 0 to node 3 has no none edge (exact)."""
    return any(all(cell[e] != NONE for e in path) for path in PATHS)


def canonical_cell(cell: Cell) -> Cell:
    """Representative of the cell's equivalence class: dead edges set to none.

    Rule: two cells are equivalent when they have the same live edges with the same operations.
    A dead edge never reaches the output, so with the same (supernet or stand-alone) weights both
    compute exactly the same function. Node permutations are *not* merged, because swapping nodes
    changes which edge weights a weight-sharing supernet uses. All disconnected cells form one class.
    """
    live = live_edges(cell)
    return tuple(op if e in live else NONE for e, op in enumerate(cell))


def nonlinearity_count(cell: Cell) -> int:
    """Largest number of conv operations on a path; a path holding a none edge counts 0."""
    best = 0
    for path in PATHS:
        if any(cell[e] == NONE for e in path):
            continue
        best = max(best, sum(1 for e in path if cell[e] in CONV_OPS))
    return best
