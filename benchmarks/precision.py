"""Precision and engine-overhead benchmark (not a test): figures side by side in one run.

    python benchmarks/precision.py [--quick] [--threads N] [--device cpu|cuda]

Prints (1) matmul GFLOP/s in fp32 and bf16 (the machine's limit), (2) training steps/s of the default vision and
audio backbones in fp32 and under bf16 autocast, through the engine, and (3) the engine's train-step time
against a bare PyTorch loop on the same model, batch and optimizer, plain and in the engine's weight layout (the
framework's overhead: engine / bare in the same layout; aim >= 0.95x).
"""
from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from transferlab.system.context import Runtime
from transferlab.system import precision
from transferlab.core.engine import TrainConfig, conv_layout, to_input, train
from transferlab.models import create_model
from transferlab.params import load_params

ROOT = Path(__file__).resolve().parents[1]


def matmul_gflops(dtype: torch.dtype, device: torch.device, n: int, seconds: float) -> float:
    a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))
    a @ b  # warm-up
    done, start = 0, time.perf_counter()
    while True:
        a @ b
        done += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return 2 * n ** 3 * done / elapsed / 1e9


def backbones(params) -> dict[str, tuple[torch.nn.Module, torch.Tensor, torch.Tensor]]:
    """The default run's vision and audio backbones with one stored-format batch of their pre-training size."""
    v, a = params.pretrain, params.audio.pretrain
    size, chans = params.prepare.image_size, params.prepare.channels
    clip = int(params.audio.prepare.sample_rate * params.audio.prepare.clip_seconds)
    gen = torch.Generator().manual_seed(0)
    out = {}
    for name, cfg, samples in (
            (f"vision {v.model.name}", v, torch.randint(0, 256, (v.batch_size, chans, size, size), generator=gen,
                                                        dtype=torch.uint8)),
            (f"audio {a.model.name}", a, torch.randint(-8000, 8000, (a.batch_size, clip), generator=gen,
                                                       dtype=torch.int16))):
        torch.manual_seed(0)
        model = create_model(cfg.model.name, num_classes=10, in_chans=chans if samples.dtype == torch.uint8 else 1,
                             widths=list(cfg.model.widths), dropout=cfg.model.dropout)
        out[name] = (model, samples, torch.randint(0, 10, (len(samples),), generator=gen))
    return out


def engine_steps_per_s(model, samples, labels, steps: int, runtime: Runtime) -> float:
    cfg = TrainConfig(steps=steps, batch_size=len(samples))
    groups = [{"params": list(model.parameters()), "lr": 1e-3}]
    train(model, samples, labels, groups, TrainConfig(steps=2, batch_size=len(samples)),
          torch.Generator().manual_seed(0), runtime)  # warm-up: allocations, oneDNN kernel choice
    start = time.perf_counter()
    train(model, samples, labels, groups, cfg, torch.Generator().manual_seed(0), runtime)
    if runtime.device == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - start)


def bare_steps_per_s(model, samples, labels, steps: int, device, layout: bool) -> float:
    """The same work as the engine's step, written as the plain loop a user would write: AdamW + OneCycleLR,
    the batch converted each step, cross-entropy, backward, step; with `layout`, in the engine's weight layout
    (channels-last convolutions on a CPU), so engine / bare is the framework's overhead alone."""
    model.to(device).train()
    with conv_layout(model, device) if layout else contextlib.nullcontext():
        return _bare(model, samples, labels, steps, device)


def _bare(model, samples, labels, steps: int, device) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=steps + 2)
    labels = labels.to(device)

    def step() -> None:
        with Runtime(device=device.type).autocast():  # fp32: the overhead table compares fp32 loops
            loss = F.cross_entropy(model(to_input(samples, device)), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        loss.item()  # the engine logs the loss each step: the same synchronisation
    for _ in range(2):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer steps, smaller matmul (a check, not a figure)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores, at most 8)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(args.threads or min(torch.get_num_threads(), 8))
    steps, n, secs = (3, 512, 0.3) if args.quick else (20, 2048, 2.0)
    console = Console()
    console.print(f"device {device}, {torch.get_num_threads()} thread(s), torch {torch.__version__}, native bf16: "
                  f"{precision.native_bf16(device)} (runtime.precision auto → {precision.resolve('auto', device)})")

    table = Table(title=f"matmul {n}×{n}")
    table.add_column("dtype")
    table.add_column("GFLOP/s", justify="right")
    for dtype in (torch.float32, torch.bfloat16):
        # Emulated bf16 (no AVX-512 BF16/AMX) is ~100x slower: one product is enough to show it.
        table.add_row(str(dtype).removeprefix("torch."), f"{matmul_gflops(dtype, device, n, secs):,.1f}")
    console.print(table)

    params = load_params(ROOT / "params.yaml")
    table = Table(title="training steps/s through the engine (batch of the default pre-training)")
    for col in ("backbone", "batch", "fp32 steps/s", "bf16 steps/s", "bf16 / fp32"):
        table.add_column(col, justify="right" if col != "backbone" else "left")
    overhead = Table(title="engine vs a bare PyTorch loop (same model, batch, optimizer; fp32)")
    for col in ("backbone", "bare steps/s", "bare, engine's layout", "engine steps/s", "engine / bare (same layout)"):
        overhead.add_column(col, justify="right" if col != "backbone" else "left")
    for name, (model, samples, labels) in backbones(params).items():
        state = {k: v.clone() for k, v in model.state_dict().items()}
        rates = {}
        for p in ("fp32", "bf16"):
            model.load_state_dict(state)
            # Emulated bf16 can take minutes a step on a big batch: one step then, still timed honestly.
            rates[p] = engine_steps_per_s(model, samples, labels, steps if p == "fp32" or
                                          precision.native_bf16(device) else 1, Runtime(device.type, p))
        table.add_row(name, str(len(samples)), f"{rates['fp32']:.2f}", f"{rates['bf16']:.2f}",
                      f"{rates['bf16'] / rates['fp32']:.2f}×")
        model.load_state_dict(state)
        plain = bare_steps_per_s(model, samples, labels, steps, device, layout=False)
        model.load_state_dict(state)
        bare = bare_steps_per_s(model, samples, labels, steps, device, layout=True)
        model.load_state_dict(state)
        engine = engine_steps_per_s(model, samples, labels, steps, Runtime(device.type))
        overhead.add_row(name, f"{plain:.2f}", f"{bare:.2f}", f"{engine:.2f}", f"{engine / bare:.3f}×")
    console.print(table)
    console.print(overhead)


if __name__ == "__main__":
    main()
