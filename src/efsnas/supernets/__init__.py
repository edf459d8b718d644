"""Few-shot supernets: one per subspace of a split, and routing of subnets to them."""

from efsnas.supernets.fewshot import FewShotSupernets

__all__ = ["FewShotSupernets"]
