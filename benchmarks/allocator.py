"""Allocator benchmark (not a test): a training step under three glibc malloc settings, side by side.

    python benchmarks/allocator.py [--steps N]

Each setting runs in its own process on one thread (glibc reads its MALLOC_* variables at start-up): glibc's
defaults, Dask's worker setting (MALLOC_TRIM_THRESHOLD_=65536: what every sweep job ran under before
transferlab/system/malloc.py), and that setting followed by keep_freed_memory() (what jobs run under now). Prints
ms per step, user and system CPU per step and page faults per step for the default profile's networks.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import json, resource, sys, time, torch
from transferlab.system.malloc import keep_freed_memory
from transferlab.core.engine import TrainConfig, train
from transferlab.models import create_model
from transferlab.params import load_params
mode, steps = sys.argv[1], int(sys.argv[2])
if mode == "kept":
    keep_freed_memory()
torch.set_num_threads(1)
p = load_params(sys.argv[3])
nets = {"vision " + p.pretrain.model.name: (p.pretrain.model.name, p.pretrain.model.widths, (28, 28), p.finetune.batch_size),
        "audio " + p.audio.pretrain.model.name: (p.audio.pretrain.model.name, p.audio.pretrain.model.widths, (16000,),
                                                 p.audio.finetune.batch_size),
        "audio branch " + p.branches.audio.e2e.model: (p.branches.audio.e2e.model, p.branches.audio.e2e.widths, (16000,),
                                                       p.branches.audio.e2e.batch_size)}
out = {}
for name, (arch, widths, shape, bs) in nets.items():
    torch.manual_seed(0)
    m = create_model(arch, num_classes=10, in_chans=1, widths=list(widths))
    x = (torch.randint(0, 256, (bs * 4, *shape), dtype=torch.uint8) if len(shape) == 2
         else (torch.randn(bs * 4, *shape) * 3000).to(torch.int16))
    y = torch.randint(0, 10, (bs * 4,))
    groups = [{"params": list(m.parameters()), "lr": 1e-3}]
    cfg = lambda n: TrainConfig(steps=n, batch_size=bs, augment=True)
    train(m, x, y, groups, cfg(6), torch.Generator().manual_seed(0))  # warm-up: the heap grows to its size
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    train(m, x, y, groups, cfg(steps), torch.Generator().manual_seed(0))
    r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    out[name] = {"ms": (t1 - t0) / steps * 1e3, "user": (r1.ru_utime - r0.ru_utime) / steps * 1e3,
                 "sys": (r1.ru_stime - r0.ru_stime) / steps * 1e3, "faults": (r1.ru_minflt - r0.ru_minflt) / steps}
print(json.dumps(out))
"""

SETTINGS = {"glibc defaults": ("plain", {}), "Dask worker (trim 64 KiB)": ("plain", {"MALLOC_TRIM_THRESHOLD_": "65536"}),
            "Dask worker + keep_freed_memory": ("kept", {"MALLOC_TRIM_THRESHOLD_": "65536"})}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    args = ap.parse_args()
    base = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    results = {}
    for label, (mode, env) in SETTINGS.items():
        proc = subprocess.run([sys.executable, "-c", PROBE, mode, str(args.steps), args.params], cwd=ROOT,
                              env={**base, **env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, check=True)
        results[label] = json.loads(proc.stdout.strip().splitlines()[-1])
    table = Table(title=f"one training step, 1 thread, {args.steps} steps (augmentation on, as in the sweeps)")
    for col in ("network", "setting", "ms/step", "user ms", "system ms", "page faults"):
        table.add_column(col, justify="left" if col in ("network", "setting") else "right")
    for net in next(iter(results.values())):
        for label, res in results.items():
            r = res[net]
            table.add_row(net, label, f"{r['ms']:.1f}", f"{r['user']:.1f}", f"{r['sys']:.1f}", f"{r['faults']:.0f}")
    Console().print(table)


if __name__ == "__main__":
    main()
