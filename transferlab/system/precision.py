"""Numeric precision of training and inference: fp32, or bf16 autocast over fp32 weights.

The precision is process state, like torch's own thread count: `runtime.configure` sets it from
`runtime.precision`, and `parallel.run_jobs` carries it into every worker, so the engine needs no argument.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import torch

PRECISIONS = ("fp32", "bf16")
_current = "fp32"


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return set(line.partition(":")[2].split())


def native_bf16(device: torch.device | str) -> bool:
    """Whether `device` computes bf16 in hardware: CUDA with bf16, or a CPU with AVX-512 BF16 or AMX.

    Elsewhere bf16 is emulated and much slower than fp32 (measured on an AVX2-only CPU: a 2048² matmul at
    ~0.2 GFLOP/s in bf16 against ~80 in fp32), so `auto` must not pick it there."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if any(p is not None for p in probes):
        return any(bool(p()) for p in probes if p is not None)
    return bool({"avx512_bf16", "amx_bf16"} & _cpu_flags())


def resolve(requested: str, device: torch.device | str) -> str:
    """`fp32` | `bf16` | `auto` → fp32 or bf16; auto is bf16 only where the device has native bf16."""
    if requested == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of fp32, bf16, auto; got {requested!r}")
    return requested


def set_precision(precision: str) -> None:
    """Make `precision` (fp32 or bf16, already resolved) this process's precision."""
    global _current
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be fp32 or bf16 here (resolve 'auto' first); got {precision!r}")
    _current = precision


def current() -> str:
    return _current


def autocast(device: torch.device | str) -> contextlib.AbstractContextManager:
    """Autocast to bf16 on `device` when this process runs in bf16; a no-op in fp32.

    Weights, gradients and optimizer state stay fp32: only the matmuls and convolutions inside run in bf16."""
    if _current != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
