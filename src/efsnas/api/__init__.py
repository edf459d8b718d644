"""The abstract interfaces every component is written against (one per concept)."""

from efsnas.api.sampler import SubnetSampler
from efsnas.api.search_space import EvolutionMixin, SearchSpace, Subnet
from efsnas.api.split import Split, SplitCriterion, Subspace
from efsnas.api.supernet import Supernet

__all__ = [
    "SearchSpace",
    "EvolutionMixin",
    "Subnet",
    "Subspace",
    "Split",
    "SplitCriterion",
    "Supernet",
    "SubnetSampler",
]
