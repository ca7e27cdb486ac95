"""Independent training jobs spread over worker processes of one thread each (small nets on CPU scale
better across processes than across threads)."""
from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable

import torch


def _call(fn: Callable, args: tuple, threads: int) -> Any:
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    with threadpool_limits(threads):  # numpy/scikit-learn BLAS too: no oversubscription across workers
        return fn(*args)


def run_jobs(fn: Callable, jobs: list[tuple], workers: int = 1) -> list:
    """fn(*job) for every job, results in job order. Each job must seed itself, so the results do not
    depend on how many workers ran them. `fn` must be importable (module level) for spawn."""
    if workers <= 1 or len(jobs) <= 1:
        return [fn(*job) for job in jobs]
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(_call, fn, job, 1) for job in jobs]
        return [f.result() for f in futures]
