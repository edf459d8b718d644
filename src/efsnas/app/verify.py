"""The answer of a search, checked: the found subnet retrained stand-alone beside references
trained at the same budget on the same data (a few random valid subnets, reported by their
median, and the space's hand-designed subnet). A supernet estimate is a ranking signal from
narrow shared-weight networks, not an accuracy; this is what tells a good search from a bad one.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable
from pathlib import Path

from efsnas.fileio import write_json_atomic


def pick_subnets(space, best, *, random_subnets: int, reference: bool, seed: int,
                 max_flops: float | None = None) -> list[tuple[str, tuple]]:
    """(role, subnet) rows: the found one, the reference, then distinct random valid ones
    (`best` None: the reference and random ones alone, which do not depend on the search);
    under a FLOPs limit (units of `space.flops`), the reference and the random subnets are
    within it too, as the search's candidates were."""
    rows = [("found", tuple(best))] if best is not None else []
    ref = space.reference_subnet(max_flops=max_flops) if reference else None
    if ref is not None and (best is None or space.canonical(ref) != space.canonical(best)):
        rows.append(("reference", tuple(ref)))
    rng = random.Random(seed)
    seen = {space.canonical(s) for _, s in rows}
    for _ in range(1000 * random_subnets):  # bounded: a tight limit rejects most draws
        if sum(r == "random" for r, _ in rows) >= random_subnets:
            break
        s = space.sample(rng)
        if max_flops is not None and space.flops(s) > max_flops:
            continue
        if space.canonical(s) not in seen:
            seen.add(space.canonical(s))
            rows.append(("random", s))
    return rows


def verify(rows: list[tuple[str, tuple]], train_one: Callable[[tuple, int], dict], *,
           seeds: list[int], describe: Callable[[tuple], dict], path: Path | None = None,
           identity: dict | None = None, log=print) -> dict:
    """Retrain every row with every seed (resumable through `path`, a JSON file of finished
    trainings for this `identity`); returns rows with `retrained_test_accuracy` and a verdict."""
    done = load_runs(path, identity)
    out_rows = []
    for role, subnet in rows:
        info = describe(subnet)
        accs = []
        for seed in seeds:
            key = f"{info['cell']}#{seed}"
            if key not in done:
                rec = train_one(subnet, seed)
                done[key] = _entry(rec)
                if path is not None:
                    write_json_atomic(path, {"identity": identity, "runs": done})
                log(f"retrained {role} {info['cell']} (seed {seed}): {rec['top1']:.2f}% "
                    f"({rec['seconds']:.0f}s)")
            accs.append(done[key]["top1"])
        out_rows.append({"role": role, **info, "retrained_test_accuracy": {
            "mean": statistics.fmean(accs),
            "std": statistics.stdev(accs) if len(accs) > 1 else None, "runs": accs}})
    return {"rows": out_rows, **verdict(out_rows),
            "evaluated_on": next(iter(done.values()))["evaluated_on"] if done else None}


def load_runs(path: Path | None, identity: dict | None) -> dict:
    """The finished trainings (cell#seed -> record) in `path` for this `identity`."""
    import json

    if path is None or not path.exists():
        return {}
    state = json.loads(path.read_text())
    same = state.get("identity") == json.loads(json.dumps(identity))
    return state["runs"] if same else {}


def _entry(rec: dict) -> dict:
    return {"top1": rec["top1"], "seconds": rec["seconds"], "evaluated_on": rec["evaluated_on"],
            **({"threads": rec["threads"]} if "threads" in rec else {})}


class VerifyRuns:
    """verify.json as trainings finish in any order (a pool's workers): each `add` merges
    into what the file holds, so several writers of one run (one at a time) lose nothing."""

    def __init__(self, path: Path, identity: dict) -> None:
        import json

        self.path, self.identity = Path(path), json.loads(json.dumps(identity))
        self.runs = load_runs(self.path, self.identity)

    def has(self, cell: str, seed: int) -> bool:
        return f"{cell}#{seed}" in self.runs

    def add(self, cell: str, seed: int, rec: dict) -> None:
        self.runs = {**load_runs(self.path, self.identity), **self.runs,
                     f"{cell}#{seed}": _entry(rec)}
        write_json_atomic(self.path, {"identity": self.identity, "runs": self.runs})


def verdict(rows: list[dict]) -> dict:
    acc = {r["cell"]: r["retrained_test_accuracy"]["mean"] for r in rows}
    found = next(r for r in rows if r["role"] == "found")
    randoms = [acc[r["cell"]] for r in rows if r["role"] == "random"]
    ref = next((r for r in rows if r["role"] == "reference"), None)
    out = {"found": acc[found["cell"]],
           "random_median": statistics.median(randoms) if randoms else None,
           "reference": acc[ref["cell"]] if ref else None}
    out["beats_random_median"] = (None if out["random_median"] is None
                                  else out["found"] > out["random_median"])
    out["beats_reference"] = None if ref is None else out["found"] > out["reference"]
    return out


def format_table(result: dict, *, markdown: bool = False) -> str:
    """The verification as an aligned text table (or Markdown), with the verdict below it."""
    head = ["role", "cell", "subspace", "MFLOPs", "params", "supernet estimate",
            f"retrained top-1 ({result.get('evaluated_on') or 'test'})"]
    body = []
    for r in result["rows"]:
        a = r["retrained_test_accuracy"]
        std = "" if a["std"] is None else f" ± {a['std']:.2f}"
        est = r.get("supernet_estimate")
        cell = r["cell"].replace("|", "\\|") if markdown else r["cell"]
        body.append([r["role"], f"`{cell}`" if markdown else cell, r.get("subspace", ""),
                     f"{r['flops'] / 1e6:.2f}", f"{r['params']:,}",
                     "n/a" if est is None else f"{est:.2f}%", f"{a['mean']:.2f}%{std}"])
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(row) + " |" for row in body]
    else:
        widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
        lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip()
                 for row in [head, *body]]
    med = result["random_median"]
    if med is not None:
        word = "beats" if result["beats_random_median"] else "does NOT beat"
        lines.append(f"The found subnet ({result['found']:.2f}%) {word} the median random subnet "
                     f"({med:.2f}%) at the same training budget.")
    if result["reference"] is not None:
        word = "above" if result["beats_reference"] else "below"
        lines.append(f"It is {word} the hand-designed reference ({result['reference']:.2f}%).")
    return "\n".join(lines)
