"""The files of a run folder, named in one place."""

from __future__ import annotations

import shutil
from pathlib import Path

from efsnas.train import trainer


class RunFiles:
    """Paths in a run folder. Training writes the config, checkpoint and metrics; staged
    criteria also stage folders and the learned split; scoring, search and verification write
    results derived from the supernets, which `clear_derived` removes with them."""

    CONFIG = "config.yaml"
    CHECKPOINT = trainer.CHECKPOINT  # the trainer writes these two
    METRICS = trainer.METRICS
    TRAIN_SUMMARY = "train.json"
    SPLIT_STATE = "split-state.json"  # what a staged criterion learned (GM-NAS decisions)
    SCORES = "scores.json"
    RESULT = "result.json"
    VERIFY = "verify.json"
    VERIFY_TABLE = "verify.md"
    FINALISTS = "finalists.json"  # the finalists' short retrainings (efsnas.app.finalists)
    # everything computed from the supernets (and the supernets themselves)
    DERIVED = (CHECKPOINT, METRICS, TRAIN_SUMMARY, SPLIT_STATE, SCORES, RESULT, VERIFY,
               VERIFY_TABLE, FINALISTS, "*.partial", "*-state.json", "best_cell.*")

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __truediv__(self, name: str) -> Path:
        return self.root / name

    @property
    def config(self) -> Path:
        """The resolved config (config.yaml)."""
        return self.root / self.CONFIG

    @property
    def checkpoint(self) -> Path:
        """The training checkpoint the trainer writes."""
        return self.root / self.CHECKPOINT

    @property
    def metrics(self) -> Path:
        """The training metrics the trainer writes."""
        return self.root / self.METRICS

    @property
    def split_state(self) -> Path:
        """What a staged criterion learned (GM-NAS decisions)."""
        return self.root / self.SPLIT_STATE

    @property
    def result(self) -> Path:
        """The run's search result (result.json)."""
        return self.root / self.RESULT

    @property
    def verify(self) -> Path:
        """The verification's result (verify.json)."""
        return self.root / self.VERIFY

    def stage(self, i: int) -> Path:
        """Folder of a staged criterion's stage i (all but the last; the last is the run's)."""
        return self.root / f"stage{i}"

    def search_state(self, name: str, strategy: str, tag: str) -> Path:
        """A search's resumable state file, named by the search's name, strategy and
        settings `tag`."""
        return self.root / f"{name}-{strategy}-{tag}-state.json"

    def clear_derived(self) -> None:
        """Remove everything computed from the supernets (checkpoint, metrics, scores, results,
        search states, stage folders), keeping the config."""
        for pattern in self.DERIVED:
            for path in self.root.glob(pattern):
                path.unlink()
        for stage in self.root.glob("stage[0-9]*"):
            shutil.rmtree(stage, ignore_errors=True)
        shutil.rmtree(self.root / "warmup", ignore_errors=True)  # FS-NAS stage of older runs
