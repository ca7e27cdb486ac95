"""The one door to parallelism: how many workers, and one function that runs independent jobs over them.

Every pool in the project goes through `run_jobs`, so replacing it (e.g. with a Dask client) changes them all.
Workers are processes of one thread each: small nets on CPU scale better across processes than across threads.
"""
from __future__ import annotations

import multiprocessing as mp
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, Callable

import torch


def cores() -> int:
    """CPU cores this machine reports (at least 1)."""
    return os.cpu_count() or 1


def workers(requested: int = 0, jobs: int | None = None) -> int:
    """Worker count for `jobs` independent jobs: `requested`, or one per core when 0; never more than the jobs
    (a process with nothing to do only costs its start-up) and never fewer than 1."""
    n = requested if requested > 0 else cores()
    return max(1, min(n, jobs)) if jobs is not None else n


def _call(fn: Callable, args: tuple, threads: int) -> Any:
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    with threadpool_limits(threads):  # numpy/scikit-learn BLAS too: no oversubscription across workers
        return fn(*args)


def _describe(args: tuple, width: int = 60) -> str:
    """The job's short arguments (names, numbers, specs); bulky ones (tensors, tables) by type only."""
    shown = []
    for a in args:
        text = repr(a) if isinstance(a, (str, int, float, bool, type(None))) or hasattr(a, "__dataclass_fields__") \
            else f"<{type(a).__name__}>"
        shown.append(text if len(text) <= width else text[:width - 3] + "...")
    return ", ".join(shown)


def _name_job(err: BaseException, fn: Callable, i: int, n: int, args: tuple) -> BaseException:
    # A note, not a new exception type: callers that catch the job's own error type still catch it.
    err.add_note(f"in job {i + 1} of {n}: {getattr(fn, '__qualname__', fn)}({_describe(args)})")
    return err


def run_jobs(fn: Callable, jobs: list[tuple], workers: int = 1,
             on_result: Callable[[int, Any], None] | None = None) -> list:
    """fn(*job) for every job; the results in job order, whatever order they finish in.

    Each job must seed itself, so results do not depend on the number of workers. With one worker (or one
    job) the jobs run here, in this process, with its threads; otherwise in `workers` spawned processes of
    one thread each, so `fn` and the jobs must pickle (fn at module level). `on_result(index, result)` is
    called in this process as each job finishes (for progress). A job that raises stops the run, and its
    error carries a note naming the job."""
    jobs = list(jobs)
    results: list = [None] * len(jobs)
    if workers <= 1 or len(jobs) <= 1:
        for i, job in enumerate(jobs):
            try:
                results[i] = fn(*job)
            except Exception as err:
                raise _name_job(err, fn, i, len(jobs), job)
            if on_result is not None:
                on_result(i, results[i])
        return results
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=mp.get_context("spawn")) as pool:
        pending = {pool.submit(_call, fn, job, 1): i for i, job in enumerate(jobs)}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=pending.get):
                    i = pending.pop(future)
                    try:
                        results[i] = future.result()
                    except Exception as err:
                        raise _name_job(err, fn, i, len(jobs), jobs[i])
                    if on_result is not None:
                        on_result(i, results[i])
        except BaseException:
            for future in pending:  # do not wait for jobs whose results nobody will read
                future.cancel()
            raise
    return results
