"""Streaming detector speed (not a test): the real-time factor (scoring time / audio time) of the wake-word detector
slid over 10 minutes of audio, on one thread and on all, at several hops, its front end from one STFT of the
stream (what detect and the evaluation use) beside the window-by-window baseline, in one run. The model is
the one given (a fine-tuned wake-word model directory), else the params' audio architecture (default profile:
audio_crnn widths [16, 32, 64]) with random weights: speed does not depend on what the weights learned.

    python benchmarks/detector_rtf.py [--model models/audio/finetuned/audio-full-n100] [--minutes 10]

Goal (issue 31): ≤ 0.02 on one core for the default detector at its default hop.
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from transferlab.experiments.wakeword.streaming import StreamSettings, window_outputs
from transferlab.models import create_model
from transferlab.models.artifacts import load_model
from transferlab.params import load_params


def _model(model_dir: Path | None, params: Path) -> tuple[torch.nn.Module, str, int, int]:
    if model_dir:
        model, card = load_model(model_dir)
        prep = card["preprocessing"]
        return model, str(model_dir), int(prep["sample_rate"]), int(prep["clip_samples"])
    p = load_params(params).audio
    spec = p.pretrain.model.model_dump()
    name = spec.pop("name")
    model = create_model(name, num_classes=2, **spec).eval()
    rate = p.prepare.sample_rate
    return model, f"{name} {spec} (random weights)", rate, int(round(rate * p.prepare.clip_seconds))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="a wake-word model directory (default: the params' architecture)")
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--hops", type=float, nargs="+", default=[0.08, 0.1, 0.2])
    args = ap.parse_args()
    model, what, rate, clip = _model(args.model, args.params)
    stream = (np.random.default_rng(0).normal(0, 0.1, int(args.minutes * 60 * rate)) * 32767).astype(np.int16)
    seconds = len(stream) / rate
    threads = sorted({1, os.cpu_count() or 1})
    table = Table("hop (s)", "front end", *[f"RTF, {t} thread(s)" for t in threads], "windows/s (1 thread)",
                  title=f"{what}: {seconds / 60:.0f} min of audio at {rate} Hz")
    default_hop = StreamSettings().hop_s
    for hop in args.hops:
        hop_samples = max(int(round(hop * rate)), 1)
        # Ours (one STFT of the stream shared by overlapping windows) beside the baseline (each window's own).
        for shared in (False, True):
            row, per_s = [], None
            for t in threads:
                torch.set_num_threads(t)
                window_outputs(model, stream[: rate * 5], clip, hop_samples, shared_stft=shared)  # warm-up
                start = time.perf_counter()
                out = window_outputs(model, stream, clip, hop_samples, shared_stft=shared)
                wall = time.perf_counter() - start
                row.append(f"{wall / seconds:.4f}")
                per_s = per_s or len(out) / wall
            table.add_row(f"{hop:g}{' (default)' if hop == default_hop else ''}",
                          "one STFT per stream" if shared else "per window", *row, f"{per_s:,.0f}")
    console = Console()
    console.print(table)
    console.print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}; goal: RTF ≤ 0.02 on one "
                  "thread at the default hop")


if __name__ == "__main__":
    main()
