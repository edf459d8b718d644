"""The examples in the public entry points' docstrings run as written."""

import doctest
import random

import efsnas.registry
from efsnas.registry import create_criterion, create_space


def test_registry_docstring_examples():
    split = create_criterion("nonlinearity", groups="0,1/2/3").split(create_space("nb201"))
    result = doctest.testmod(efsnas.registry, extraglobs={"split": split, "random": random})
    assert result.attempted >= 8 and result.failed == 0
