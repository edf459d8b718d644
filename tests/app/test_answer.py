"""The main job's retrainings on a pool: a worker that dies stops the run with a clear error,
and every training that finished before is kept."""

import os

import pytest

from efsnas.app.answer import RERUN, Retrainings
from efsnas.errors import WorkerError
from efsnas.parallel import Gate, create_executor


def _job(name: str) -> dict:
    if name == "die":
        os._exit(3)  # a worker killed (out of memory, say)
    return {"name": name}


def test_a_dead_worker_stops_the_run_and_keeps_the_finished_results():
    saved = {}
    pool = create_executor(2, device="cpu")
    try:
        gate = Gate(pool, 1, lambda key, rec: saved.__setitem__(key, rec))  # one at a time
        first = gate.submit("a", _job, "a")
        dead = gate.submit("b", _job, "die")
        with pytest.raises(WorkerError, match="worker process died") as e:
            Retrainings.wait([first, dead])
        assert RERUN in str(e.value)
        assert saved == {"a": {"name": "a"}}  # finished before the death: kept
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
