"""The application layer: configuration, runs and their folders, staged training, the
comparison of criteria and the verification of a search. Everything below it (spaces, split
criteria, supernets, samplers, trainer, scorer, searchers) is a component that knows nothing
of runs; this layer assembles registered components by name and never switches on one."""

from efsnas.app.config import RunConfig, load_config, load_run_config
from efsnas.app.files import RunFiles
from efsnas.app.run import Run

__all__ = ["Run", "RunConfig", "RunFiles", "load_config", "load_run_config"]
