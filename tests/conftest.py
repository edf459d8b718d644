import json
import os
import tempfile
from pathlib import Path

import pytest


def pytest_configure(config):
    # one xdist worker per core: each gets its share of the cores, not all of them; the
    # processes a test starts get the same share (a killed-and-resumed run must compute as the
    # uninterrupted one did, and float sums depend on the thread count)
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers > 1:
        import torch

        threads = max(1, (os.cpu_count() or 1) // workers)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)


SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "nb201"


def _load(name: str):
    path = SHARED / name
    if not path.exists():
        pytest.skip(f"reference data {path} is absent (the ../shared folder beside the checkout)")
    return json.loads(path.read_text())


@pytest.fixture(scope="session")
def nb201_groups():
    return _load("nonlinearity-groups.json")


@pytest.fixture(scope="session")
def nb201_accuracy():
    return _load("cifar10-test-accuracy.json")


@pytest.fixture(scope="session")
def nb201_space():
    from efsnas import create_space

    return create_space("nb201")


@pytest.fixture(scope="session")
def all_cells(nb201_space):
    return list(nb201_space.enumerate())


# hypothesis caches constants and unicode tables beside the database, by default in ./.hypothesis
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY",
                      os.path.join(tempfile.gettempdir(), "efsnas-hypothesis"))
try:  # a bounded, database-free profile: no .hypothesis folder in the repository, seconds of tests
    from hypothesis import settings

    settings.register_profile("efsnas", database=None, max_examples=60, deadline=None)
    settings.load_profile("efsnas")
except ImportError:  # hypothesis is in the dev extra; its tests skip without it
    pass
