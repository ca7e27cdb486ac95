"""Numeric precision of training and inference: fp32, or bf16 autocast over fp32 weights. Which one a
device can run fast (`auto`); the chosen one travels in the runtime context (context.Runtime.precision)."""
from __future__ import annotations

from pathlib import Path

import torch

from transferlab.system.context import PRECISIONS


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
