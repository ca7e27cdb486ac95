"""A stage's runtime context from `runtime.*` (device, precision, workers, threads, cluster), the process settings
that go with it, and seeding."""
from __future__ import annotations

import os
import random
import sys
from typing import TYPE_CHECKING

import numpy as np
import torch

from transferlab.system.context import Runtime
from transferlab.system.malloc import keep_freed_memory
from transferlab.system.parallel import cores, workers
from transferlab.system.precision import resolve

if TYPE_CHECKING:
    from transferlab.params import RuntimeParams


def device_problem(device: str) -> str | None:
    """Why `runtime.device` cannot be honoured on this machine (one line naming the key), or None."""
    if device == "cuda" and not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU-only build"
        return (f"runtime.device is 'cuda' but this machine has no usable CUDA device (torch {torch.__version__}, "
                f"{build}); set runtime.device: auto (or cpu)")
    return None


def configure(runtime: RuntimeParams, device: str | None = None) -> Runtime:
    """The stage's runtime context from `runtime.*` (`device` overrides runtime.device; `auto` device and
    precision resolved for this machine, workers 0 → one per core), and this process set up to match: its
    torch threads, deterministic algorithms, and the allocator kept from returning freed memory."""
    device = device or runtime.device
    problem = device_problem(device)
    if problem:
        raise RuntimeError(problem)
    chosen = "cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu"
    keep_freed_memory()  # training steps reuse their memory instead of page-faulting it back (malloc.py)
    # Beyond a few threads small convolutions get slower, not faster.
    threads = runtime.threads or min(cores(), 8)
    torch.set_num_threads(threads)
    # Deterministic kernels on both devices. Measured on an H200: without them two identical fp32 sweeps agreed in
    # 74 of 165 runs' accuracies (likely cuDNN's non-deterministic convolution kernels; not yet re-measured with
    # these settings); cuBLAS needs its workspace setting before its first call.
    if chosen == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    deterministic_algorithms()
    return Runtime(device=chosen, precision=resolve(runtime.precision, chosen), workers=workers(runtime.workers),
                   threads=threads, cluster=runtime.cluster)


def deterministic_algorithms() -> None:
    """torch.use_deterministic_algorithms(True, warn_only=True) without its import of torch._inductor, which costs
    every stage process ~2.4 s of start-up to set a flag for torch.compile (nothing here compiles). Once inductor is
    loaded anyway, the public call sets both."""
    if "torch._inductor.config" in sys.modules:
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        torch._C._set_deterministic_algorithms(True, warn_only=True)


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
