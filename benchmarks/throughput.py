"""Throughput benchmark (not a test): prints figures, comparing alternatives side by side in one run.

    python benchmarks/throughput.py [--quick]
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from transferlab.system.context import Runtime
from transferlab.core.augment import random_affine
from transferlab.data.glyphs import GREEK_DISTINCT, LATIN_DISTINCT, render_dataset
from transferlab.models import create_model


def timed(fn, repeat: int = 1) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def bench_rendering(n: int) -> list[tuple[str, str]]:
    chars = LATIN_DISTINCT + GREEK_DISTINCT
    rows = []
    for workers in (1, 2):
        seconds = timed(lambda: render_dataset(n, chars, seed=0, runtime=Runtime(workers=workers), chunk=max(1, n // 4)))
        rows.append((f"render glyphs, {workers} process(es)", f"{n / seconds:,.0f} images/s"))
    return rows


def bench_training(steps: int) -> list[tuple[str, str]]:
    rows = []
    x = torch.randn(128, 1, 28, 28)
    y = torch.randint(0, 70, (128,))
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for channels_last in (False, True):
            model = create_model("convnet", 70)
            xx = x
            if channels_last:
                model = model.to(memory_format=torch.channels_last)
                xx = x.contiguous(memory_format=torch.channels_last)
            opt = torch.optim.AdamW(model.parameters())

            def step():
                loss = F.cross_entropy(model(xx), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
            seconds = timed(step, steps)
            layout = "channels-last" if channels_last else "contiguous"
            rows.append((f"train convnet, {threads} thread(s), {layout}", f"{128 / seconds:,.0f} images/s"))
    return rows


def bench_augmentation(repeat: int) -> list[tuple[str, str]]:
    from torchvision.transforms import v2

    x = torch.randn(64, 1, 28, 28)
    gen = torch.Generator().manual_seed(0)
    batched = timed(lambda: random_affine(x, gen), repeat)
    tv = v2.RandomAffine(degrees=12, translate=(0.09, 0.09), scale=(0.88, 1.12), shear=11)
    per_sample = timed(lambda: torch.stack([tv(img) for img in x]), repeat)
    return [("augment 64 images: batched affine_grid", f"{batched * 1e3:.2f} ms"),
            ("augment 64 images: torchvision v2 per sample", f"{per_sample * 1e3:.2f} ms")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    table = Table("what", "figure", title="transferlab throughput on this machine")
    for row in (bench_rendering(400 if args.quick else 2000) + bench_training(3 if args.quick else 15)
                + bench_augmentation(5 if args.quick else 50)):
        table.add_row(*row)
    Console().print(table)


if __name__ == "__main__":
    main()
