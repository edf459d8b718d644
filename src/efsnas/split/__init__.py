"""Split criteria: how to cut a search space into subspaces (one supernet each)."""

from efsnas.split.criteria import EdgeOperationSplit, NonlinearityCountSplit, OneShotSplit
from efsnas.split.gmnas import GMNASSplit

__all__ = ["NonlinearityCountSplit", "EdgeOperationSplit", "OneShotSplit", "GMNASSplit"]
