"""glibc malloc settings for training processes: keep freed memory instead of handing it back every step.

A training step allocates and frees the same few MB-sized tensors (a batch of clips, activations, gradients).
glibc returns freed memory at the top of the heap to the OS once more than M_TRIM_THRESHOLD is free, and serves
blocks above M_MMAP_THRESHOLD with fresh mmap calls; either way the next step page-faults the memory back in.
Dask's workers start with MALLOC_TRIM_THRESHOLD_=65536 (to keep their memory reports low), which made a default
ConvNet step 1.7x and an audio step 1.5-2.5x slower on 2 cores, half of it system time (measured,
benchmarks/allocator.py). Memory stays at the process's own peak instead, which its jobs reach anyway.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers (malloc.h)
MMAP_THRESHOLD = 32 * 2**20   # glibc's upper limit for this setting on 64-bit machines
TRIM_THRESHOLD = 256 * 2**20


@functools.cache
def _libc():
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return libc if libc is not None and hasattr(libc, "mallopt") and hasattr(libc, "gnu_get_libc_version") else None
    except OSError:
        return None


def keep_freed_memory() -> bool:
    """Raise glibc's trim and mmap thresholds in this process; False (nothing done) where libc is not glibc."""
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) & bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
