"""The runtime context: what a stage runs on, as one value.

Built once per stage from `runtime.*` (runtime.configure), handed to every function that trains, predicts or
fans out jobs, and carried inside each job to its Dask worker (it pickles). Nothing about device, precision,
workers or the cluster lives in module state, so a worker computes exactly as its caller asked.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, replace

SCHEDULER_ENV = "TRANSFERLAB_DASK_SCHEDULER"
PRECISIONS = ("fp32", "bf16")
DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class Runtime:
    device: str = "cpu"           # resolved: cpu | cuda
    precision: str = "fp32"       # resolved: fp32 | bf16 (autocast over fp32 weights)
    workers: int = 1              # processes for independent jobs (resolved: runtime.workers 0 → one per core)
    threads: int = 1              # torch threads of the stage's own process (jobs always run on one)
    cluster: str | None = None    # a Dask scheduler's address; None: TRANSFERLAB_DASK_SCHEDULER, else a local cluster

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"runtime device must be one of {', '.join(DEVICES)} here (resolve 'auto' first); "
                             f"got {self.device!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be fp32 or bf16 here (resolve 'auto' first); got {self.precision!r}")
        if self.workers < 1 or self.threads < 1:
            raise ValueError(f"workers and threads must be at least 1; got {self.workers}, {self.threads}")

    @property
    def torch_device(self):
        import torch

        return torch.device(self.device)

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast on this device when the precision is bf16; a no-op in fp32. Weights, gradients and
        optimizer state stay fp32: only the matmuls and convolutions inside run in bf16."""
        if self.precision != "bf16":
            return contextlib.nullcontext()
        import torch

        return torch.autocast(self.device, dtype=torch.bfloat16)

    def scheduler(self) -> str | None:
        """The Dask scheduler jobs go to: `cluster`, else TRANSFERLAB_DASK_SCHEDULER, else None (local)."""
        return self.cluster or os.environ.get(SCHEDULER_ENV) or None

    def on(self, device: str) -> Runtime:
        return replace(self, device=device)

    def with_workers(self, workers: int) -> Runtime:
        return replace(self, workers=max(1, workers))


CPU = Runtime()  # the default of library functions: tests, predict and tools that are not a configured stage
