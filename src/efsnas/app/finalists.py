"""The answer re-ranked by real training: the search's k best candidates (by supernet
estimate) each retrained stand-alone with a short recipe and tested on held-out images, which
come from the training set (the test set stays for the verification). The finalist with the
best held-out accuracy is the answer.

The supernets rank well overall, but their single best-scored cell is noisy (the ranking
study's top-1 lands anywhere in the ground truth's top 10-50); NAS practice (ProxylessNAS,
OFA, evolutionary searches) settles the last few candidates by training them.
"""

from __future__ import annotations

import json
from pathlib import Path

from efsnas.app.config import RunConfig
from efsnas.fileio import write_json_atomic

FILE = "finalists.json"


def recipe(cfg: RunConfig) -> RunConfig:
    """`cfg` with the finalists' short retrain recipe: `finalists.epochs` (default a quarter
    of `retrain.epochs`) on `finalists.max_train` training images (default retrain's)."""
    f, r = cfg.finalists, cfg.retrain
    update = {"epochs": f.epochs or max(1, r.epochs // 4)}
    if f.max_train is not None:
        update["max_train"] = f.max_train
    return cfg.model_copy(update={"retrain": r.model_copy(update=update)})


def identity(cfg: RunConfig) -> dict:
    """What a finalist's held-out accuracy depends on: the recipe, the data, the space."""
    return {"retrain": recipe(cfg).retrain.model_dump(), "data": cfg.data.model_dump(),
            "space": cfg.space.identity(), "seed": cfg.train.seed,
            "execution": cfg.train.model_dump(include={"amp", "amp_dtype", "channels_last"})}


def choose(rows: list[dict]) -> dict:
    """The finalist with the best held-out accuracy; a tie goes to the better supernet
    estimate, then to the earlier candidate."""
    order = sorted(range(len(rows)), key=lambda i: (-rows[i]["heldout_accuracy"],
                                                    -rows[i]["supernet_estimate"], i))
    return rows[order[0]]


class FinalistRuns:
    """Finished finalist trainings (cell#seed -> record) in one JSON file, for one identity:
    a rerun trains only what is missing; a file of another recipe is ignored and replaced."""

    def __init__(self, path: str | Path, identity: dict) -> None:
        self.path, self.identity = Path(path), identity
        self.runs: dict[str, dict] = {}
        self.choice: dict = {}  # the finalists and the pick, once chosen
        if self.path.exists():
            state = json.loads(self.path.read_text())
            if state.get("identity") == json.loads(json.dumps(identity)):
                self.runs = state.get("runs", {})
                self.choice = {k: state[k] for k in ("k", "finalists", "pick") if k in state}

    @staticmethod
    def key(cell: str, seed: int) -> str:
        return f"{cell}#{seed}"

    def add(self, cell: str, seed: int, record: dict) -> None:
        """A finished training (a `retrain_subnet` record), saved at once."""
        self.runs[self.key(cell, seed)] = {
            "heldout_accuracy": record["top1"], "heldout_images": record["images"],
            "epochs": record["epochs"], "seconds": record["seconds"]}
        self._save()

    def choose(self, candidates: list[dict], seed: int) -> tuple[list[dict], dict]:
        """The finalists' table and the pick (every candidate trained), saved."""
        rows = self.table(candidates, seed)
        if rows is None:
            raise ValueError("a finalist has not been trained yet")
        pick = choose(rows)
        self.choice = {"k": len(candidates), "finalists": rows, "pick": pick["cell"]}
        self._save()
        return rows, pick

    def _save(self) -> None:
        write_json_atomic(self.path, {"identity": self.identity, "runs": self.runs,
                                      **self.choice})

    def table(self, candidates: list[dict], seed: int) -> list[dict] | None:
        """The candidates with their held-out accuracy, or None while one is missing."""
        rows = []
        for rank, c in enumerate(candidates, 1):
            rec = self.runs.get(self.key(c["cell"], seed))
            if rec is None:
                return None
            rows.append({**c, "supernet_rank": rank, **rec})
        return rows


def describe(rows: list[dict], pick: dict, cfg: RunConfig, *, n_train: int) -> str:
    """What verify.md says about the finalists: who they were and why the pick won."""
    r = recipe(cfg).retrain
    ranked = ", ".join(f"`{c['cell']}` ({c['supernet_estimate']:.2f}% estimate, "
                       f"{c['heldout_accuracy']:.2f}% held-out)" for c in rows)
    top1 = rows[0]
    why = ("the supernets' own top-1 also has the best held-out accuracy"
           if pick["cell"] == top1["cell"] else
           f"its held-out accuracy ({pick['heldout_accuracy']:.2f}%) is the best; the "
           f"supernets' top-1 `{top1['cell']}` reached {top1['heldout_accuracy']:.2f}%")
    return (f"Finalists: the search's top {len(rows)} by supernet estimate, each trained "
            f"stand-alone for {r.epochs} epoch(s) on {n_train:,} training images and tested on "
            f"{rows[0]['heldout_images']:,} held-out images (from the training set, not the "
            f"test set): {ranked}. The answer is `{pick['cell']}`: {why}.")
