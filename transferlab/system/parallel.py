"""The one door to parallelism: how many workers, and one function that runs independent jobs over them.

Every pool in the project goes through `run_jobs`. Its back end is Dask: a LocalCluster of single-threaded
worker processes on this machine (small nets on CPU scale better across processes than across threads), or
any running scheduler named by the runtime context's cluster / TRANSFERLAB_DASK_SCHEDULER (dask-jobqueue,
Kubernetes, SSH clusters alike). How many workers and which scheduler come from the runtime context the
caller passes (context.Runtime): there is no module state. Such workers must run this project's environment
and see its paths (a shared file system): jobs carry bulky inputs by path, and relative paths are made absolute before they leave.
"""
from __future__ import annotations

import contextlib
import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from transferlab.system.context import CPU, SCHEDULER_ENV, Runtime
from transferlab.system.malloc import keep_freed_memory
from transferlab.system.progress import progress_bar

__all__ = ["SCHEDULER_ENV", "SchedulerLost", "capacity", "cores", "distributed", "run_jobs", "workers"]
_SCALARS = (str, int, float, bool, type(None))


def cores() -> int:
    """CPU cores this machine reports (at least 1)."""
    return os.cpu_count() or 1


def workers(requested: int = 0, jobs: int | None = None) -> int:
    """Worker count for `jobs` independent jobs: `requested`, or one per core when 0; never more than the jobs
    (a process with nothing to do only costs its start-up) and never fewer than 1."""
    n = requested if requested > 0 else cores()
    return max(1, min(n, jobs)) if jobs is not None else n


def distributed(runtime: Runtime) -> bool:
    """Whether run_jobs under `runtime` sends jobs to worker processes (else they run in this one)."""
    return runtime.scheduler() is not None or runtime.workers > 1


def capacity(runtime: Runtime) -> int:
    """Jobs that can run at once: the scheduler's worker threads when one is named, else the workers."""
    address = runtime.scheduler()
    if address is None:
        return runtime.workers
    from distributed import Client

    with Client(address, timeout="30s") as client:
        return max(1, sum(w["nthreads"] for w in client.scheduler_info(n_workers=-1)["workers"].values()))


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Torch and BLAS on one thread for the block. Every job runs so, here or on a worker: a reduction split
    over threads sums in another order, and the models would depend on the worker count and the machine's
    cores (with workers: 1, up to 2.5 pp apart from workers: 2)."""
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(before)


class SchedulerLost(RuntimeError):
    """The connection to the Dask scheduler broke in the middle of a sweep; the message names its address."""


def _call(fn: Callable, *args: Any) -> Any:
    # A worker runs a job on one thread (_one_thread) and keeps freed memory (Dask's workers start set to return it
    # to the OS at every free: up to 2x the step time, transferlab/system/malloc.py). Precision and device travel
    # in the job's own arguments (the runtime context), not in the worker's state.
    keep_freed_memory()
    with _one_thread():
        return fn(*args)


def _value(x: Any) -> Any:
    return x


def _short(a: Any, width: int) -> str:
    """One argument: a run by its id, a list of runs by the first ids, scalars and specs by repr, bulky ones
    (tensors, tables) by type only."""
    if hasattr(a, "run_id"):
        return str(a.run_id)
    if isinstance(a, (list, tuple)) and a and not isinstance(a[0], _SCALARS):
        flat = [x for item in a for x in (item if isinstance(item, (list, tuple)) else [item])]
        if all(hasattr(x, "run_id") for x in flat):
            more = f", +{len(flat) - 3} more" if len(flat) > 3 else ""
            return f"[{', '.join(str(x.run_id) for x in flat[:3])}{more}]"
    text = repr(a) if isinstance(a, _SCALARS) or hasattr(a, "__dataclass_fields__") else f"<{type(a).__name__}>"
    return text if len(text) <= width else text[:width - 3] + "..."


def _describe(args: tuple, width: int = 60) -> str:
    return ", ".join(_short(a, width) for a in args)


def _name_job(err: BaseException, fn: Callable, i: int, n: int, args: tuple) -> BaseException:
    # A note, not a new exception type: callers that catch the job's own error type still catch it.
    err.add_note(f"in job {i + 1} of {n}: {getattr(fn, '__qualname__', fn)}({_describe(args)})")
    return err


def _absolute(arg: Any) -> Any:
    """Relative paths (top level, or values of a dict) made absolute: a worker's working directory may differ."""
    if isinstance(arg, Path):
        return arg.absolute()
    if isinstance(arg, dict) and arg and all(isinstance(v, Path) for v in arg.values()):
        return {k: v.absolute() for k, v in arg.items()}
    return arg


@contextlib.contextmanager
def _client(n_workers: int, address: str | None) -> Iterator:
    from distributed import Client, LocalCluster

    if address is not None:
        # A lost scheduler is reported once, by run_jobs (SchedulerLost names it), not by the client's reconnect
        # tracebacks.
        quiet, level = logging.getLogger("distributed.client"), logging.getLogger("distributed.client").level
        quiet.setLevel(logging.CRITICAL)
        try:
            with Client(address, timeout="30s") as client:
                yield client
        finally:
            quiet.setLevel(level)
        return
    # No memory limit: a worker is paused or killed by the OS's limits as before, never by a Dask guess.
    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      memory_limit=0, silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        yield client


def _progress(label: str | None, total: int):
    return progress_bar() if label else contextlib.nullcontext()


def run_jobs(fn: Callable, jobs: list[tuple], runtime: Runtime = CPU,
             on_result: Callable[[int, Any], None] | None = None, label: str | None = None) -> list:
    """fn(*job) for every job; the results in job order, whatever order they finish in.

    Each job must seed itself, and every job runs on one thread, so results do not depend on the number of
    workers or cores. `runtime` says how many workers and which scheduler; a job that trains carries the context
    in its own arguments. Without a scheduler and with one worker (or one job) the jobs run here, in this process;
    otherwise on Dask workers of one thread each, so `fn` must be importable there (module level) and the jobs must pickle.
    An object passed to several jobs is sent to the cluster once. A worker that dies mid-job has its job run
    again elsewhere (Dask gives up after `distributed.scheduler.allowed-failures` deaths of the same job).
    `on_result(index, result)` is called here as each job finishes; with a `label`, progress shows as jobs
    finish (a bar on a terminal, a line per tenth in a log). A job that raises stops the run, and its error
    carries a note naming the job."""
    jobs = [tuple(job) for job in jobs]
    results: list = [None] * len(jobs)
    with _progress(label, len(jobs)) as bar:
        task = bar.add_task(label, total=len(jobs)) if bar is not None else None

        def finished(i: int) -> None:
            if on_result is not None:
                on_result(i, results[i])
            if bar is not None:
                bar.advance(task)

        address = runtime.scheduler()
        if address is None and (runtime.workers <= 1 or len(jobs) <= 1):
            for i, job in enumerate(jobs):
                try:
                    with _one_thread():
                        results[i] = fn(*job)
                except Exception as err:
                    raise _name_job(err, fn, i, len(jobs), job)
                finished(i)
            return results
        _run_on_dask(fn, jobs, min(runtime.workers, len(jobs)), address, results, finished)
    return results


def _run_on_dask(fn: Callable, jobs: list[tuple], n_workers: int, address: str | None, results: list,
                 finished: Callable[[int], None]) -> None:
    from distributed import as_completed
    from distributed.client import FutureCancelledError

    with _client(n_workers, address) as client:
        sent = [tuple(_absolute(a) for a in job) for job in jobs]
        # What several jobs share (the data set, the config) goes out once, not once per job: as a task that
        # returns it, not as scattered data, so the scheduler can recompute it when the worker holding it dies.
        counts = Counter(id(a) for job in sent for a in job if not isinstance(a, _SCALARS))
        shared = {id(a): client.submit(_value, a, pure=False)
                  for a in {id(a): a for job in sent for a in job if counts[id(a)] > 1}.values()}
        futures = [client.submit(_call, fn, *[shared.get(id(a), a) for a in job],
                                 pure=False) for job in sent]
        index = {f.key: i for i, f in enumerate(futures)}
        try:
            for future in as_completed(futures):
                i = index[future.key]
                try:
                    results[i] = future.result()
                except FutureCancelledError as err:  # the scheduler went away: no job's fault
                    done = sum(r is not None for r in results)
                    raise SchedulerLost(f"lost the Dask scheduler at {address or 'the local cluster'} "
                                        f"after {done} of {len(jobs)} jobs ({' '.join(str(err).split())}); nothing "
                                        "of this sweep was written. Check that the scheduler runs and can be "
                                        "reached, then run the stage again") from None
                except Exception as err:
                    raise _name_job(err, fn, i, len(jobs), jobs[i])
                finished(i)
        except BaseException:
            client.cancel(futures)  # do not run jobs whose results nobody will read
            raise
