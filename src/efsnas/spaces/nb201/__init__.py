"""NAS-Bench-201 cell space."""

from efsnas.spaces.nb201.space import NB201Space

__all__ = ["NB201Space"]
