"""efsnas: few-shot neural architecture search by counting nonlinear functions.

Data flows one way: search space -> split -> supernets -> sampler -> trainer -> evaluator -> search.
"""

from efsnas.registry import create_criterion, create_space, list_criteria, list_spaces

__version__ = "0.4.0"
__all__ = ["create_space", "create_criterion", "list_spaces", "list_criteria", "__version__"]
