"""Independent trainings side by side: a process pool on this machine, or cluster jobs.

On a small CPU a second thread adds little to a training step while a second single-thread
process nearly doubles the work done (benchmarks/threads.py), and one process drives one GPU.
So independent work (compare runs, ground-truth trainings, the main job's verification) goes
to `workers` single-thread processes, one per GPU on CUDA, through a
`concurrent.futures.Executor`: a spawn-context `ProcessPoolExecutor` here, or submitit jobs
(`cluster_executor`), so the same code runs a study on SLURM.

    with create_executor(workers=2, device="cpu") as pool:   # None for workers=1: run serially
        run_jobs(train_one, jobs, executor=pool, on_done=save, rerun="efsnas compare ...")

`workers=1` returns no executor, and callers keep their serial loop: the same code path, the
same results.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing as mp
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from efsnas.errors import UsageError, WorkerError

log = logging.getLogger("efsnas")

_WORKER: dict[str, Any] = {}  # this process's worker settings (set by _init_worker)


def cpu_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_workers(device: str = "auto") -> int:
    """One worker per core on CPU, one per GPU on CUDA."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda"):
        return max(1, torch.cuda.device_count()) if ":" not in str(device) else 1
    return cpu_cores()


def resolve_workers(workers: int | None, device: str = "auto") -> int:
    if workers is None:
        return default_workers(device)
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    return workers


def _exit_with_parent(parent: int, every: float = 2.0) -> None:
    """Watch the process that started this worker: a pool worker outlives a killed parent
    (SIGKILL, or SIGTERM before the pool shut down) and would go on training for no one."""
    def watch() -> None:
        import time

        while True:
            time.sleep(every)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="efsnas-parent-watch", daemon=True).start()


def _init_worker(threads: int, counter, gpus: int, parent: int | None = None) -> None:
    """Each worker: `threads` torch threads, and on CUDA its own GPU (worker i gets GPU i);
    it exits when `parent` (the pool's process) is gone."""
    import torch

    if parent is not None:
        _exit_with_parent(parent)

    torch.set_num_threads(threads)
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    _WORKER.update(index=index, threads=threads)
    if gpus > 0:
        torch.cuda.set_device(index % gpus)
        _WORKER["device"] = f"cuda:{index % gpus}"


def worker_device(device: str) -> str:
    """The device a job runs on: its worker's GPU in a CUDA pool, else `device` itself."""
    if str(device) in ("auto", "cuda") and "device" in _WORKER:
        return _WORKER["device"]
    return device


def create_executor(workers: int, *, device: str = "auto", threads: int = 1
                    ) -> cf.Executor | None:
    """A pool of `workers` spawned processes with `threads` torch threads each; None for one
    worker (run serially, in this process)."""
    if workers <= 1:
        return None
    import torch

    gpus = 0
    if str(device) in ("auto", "cuda") and torch.cuda.is_available():
        gpus = torch.cuda.device_count()
    ctx = mp.get_context("spawn")  # no fork of a process holding torch threads or CUDA
    return cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                                  initargs=(threads, ctx.Value("i", 0), gpus, os.getpid()))


def run_jobs(fn: Callable, jobs: Iterable[tuple], *, executor: cf.Executor | None,
             on_done: Callable[[tuple, Any], None], rerun: str) -> None:
    """`fn(*job)` for every job; `on_done(job, result)` in this process as each finishes (in
    job order when serial). A worker that dies stops the run with a `WorkerError` once every
    result that did finish has been handed to `on_done`."""
    jobs = list(jobs)
    if executor is None:
        for job in jobs:
            on_done(job, fn(*job))
        return
    futures = {executor.submit(fn, *job): job for job in jobs}
    failure: BaseException | None = None
    for future in cf.as_completed(futures):
        try:
            result = future.result()
        except Exception as e:  # keep draining: results finished before the failure count
            failure = failure or e
            continue
        on_done(futures[future], result)
    if failure is not None:
        raise worker_error(failure, rerun) from failure


def worker_error(e: BaseException, rerun: str) -> BaseException:
    """A dead worker or a failed cluster job as a one-line error naming what to rerun; any
    other exception (a bad input found in a worker, say) as it was."""
    if isinstance(e, BrokenProcessPool):
        what = "a worker process died (killed, or out of memory)"
    elif type(e).__module__.startswith("submitit"):
        what = f"a cluster job failed or was pre-empted ({str(e).strip().splitlines()[0]})"
    else:
        return e
    return WorkerError(f"{what}; finished results are kept: rerun `{rerun}` to continue")


class Gate:
    """Submits jobs to an executor with at most `limit` running, so this process can keep a
    core for itself (the main job trains its supernets while references retrain); `open()`
    raises the limit. Results go to `on_done` from the executor's thread, under a lock."""

    def __init__(self, executor: cf.Executor, limit: int, on_done: Callable[[Any, Any], None]):
        self.executor, self.limit, self.on_done = executor, max(1, limit), on_done
        self._lock = threading.Lock()
        self._queue: list[tuple[Any, Callable, tuple]] = []
        self._running = 0
        self.futures: dict[Any, cf.Future] = {}

    def submit(self, key, fn: Callable, *args) -> cf.Future:
        """A future for `fn(*args)` under `key` (the same key twice: the first one's)."""
        with self._lock:
            if key not in self.futures:
                self.futures[key] = cf.Future()
                self._queue.append((key, fn, args))
            future = self.futures[key]
        self._pump()
        return future

    def idle(self) -> bool:
        """Whether no job is running or waiting (every worker is free)."""
        with self._lock:
            return self._running == 0 and not self._queue

    def open(self, limit: int) -> None:
        with self._lock:
            self.limit = max(self.limit, limit)
        self._pump()

    def _pump(self) -> None:
        with self._lock:
            start = []
            while self._queue and self._running < self.limit:
                start.append(self._queue.pop(0))
                self._running += 1
        for key, fn, args in start:
            try:
                inner = self.executor.submit(fn, *args)
            except Exception as e:  # a pool already broken by an earlier death
                self._finish(key, None, e)
                continue
            inner.add_done_callback(lambda f, key=key: self._finish(key, f, None))

    def _finish(self, key, inner: cf.Future | None, error: BaseException | None) -> None:
        outer = self.futures[key]
        if error is None:
            error = inner.exception()
        if error is None:
            result = inner.result()
            try:
                with self._lock:
                    self.on_done(key, result)
            except Exception as e:  # noqa: BLE001 (handed to whoever waits on the key)
                error = e
        with self._lock:
            self._running -= 1
        if error is None:
            outer.set_result(result)
        else:
            outer.set_exception(error)
        self._pump()


# ---- cluster jobs (submitit) ---------------------------------------------------------------

class SubmititExecutor(cf.Executor):
    """submitit jobs behind the `concurrent.futures.Executor` interface: each `submit` is one
    job (one SLURM job, or one local process with `cluster="local"`), its future resolved by a
    thread that waits for the job. Needs the `cluster` extra (pip install "efsnas[cluster]")."""

    def __init__(self, folder: str | Path, *, cluster: str = "slurm", max_running: int = 256,
                 threads: int = 1, **parameters) -> None:
        try:
            import submitit
        except ImportError:
            raise UsageError('--executor slurm needs submitit: pip install "efsnas[cluster]"'
                             ) from None
        self.folder, self.threads = Path(folder), threads
        if cluster == "local":
            self._ex = submitit.LocalExecutor(folder=self.folder)
        else:
            self._ex = submitit.AutoExecutor(folder=self.folder, cluster=cluster)
        if parameters:
            self._ex.update_parameters(**parameters)
        self._submit_lock = threading.Lock()
        self._waiters = cf.ThreadPoolExecutor(max_workers=max_running,
                                              thread_name_prefix="submitit-wait")

    def submit(self, fn, /, *args, **kwargs) -> cf.Future:
        with self._submit_lock:
            job = self._ex.submit(_in_job, self.threads, fn, args, kwargs)
        log.info("submitted job %s", job.job_id)
        return self._waiters.submit(job.result)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._waiters.shutdown(wait=wait, cancel_futures=cancel_futures)


def _in_job(threads: int, fn: Callable, args: tuple, kwargs: dict):
    """A cluster job's body: the pool workers' thread setting, then the work."""
    import torch

    torch.set_num_threads(threads)
    return fn(*args, **kwargs)


def cluster_executor(kind: str, *, folder: str | Path, partition: str | None = None,
                     timeout_min: int = 240, cpus: int = 1, gpus: int = 0) -> cf.Executor:
    """`kind` "slurm" (one SLURM job per training, in `partition`) or "submitit-local" (the
    same jobs as local processes: a cluster run without a cluster, for tests)."""
    if kind == "submitit-local":
        return SubmititExecutor(folder, cluster="local", threads=cpus, timeout_min=timeout_min)
    if kind != "slurm":
        raise UsageError(f"unknown executor {kind!r}; choose local, slurm or submitit-local")
    params: dict[str, Any] = {"timeout_min": timeout_min, "cpus_per_task": cpus}
    if partition:
        params["slurm_partition"] = partition
    if gpus:
        params["gpus_per_node"] = gpus
    return SubmititExecutor(folder, cluster="slurm", threads=cpus, **params)
