"""How far can the wake-word test set be pushed with many positives? A diagnostic that prints figures, not a test.

The pipeline's stage audio_ceiling computes one such detector (full fine-tuning, params audio.ceiling) as the
yardstick of the few-positive sweep; this prints the same detector at any --positives/--steps beside
architectures trained from scratch, on the same test set (`data/audio/target` from `dvc repro audio_prepare`),
also per kind of negative. The training clips come from transferlab.experiments.wakeword.ceiling: --positives wake words and
as many negatives, spoken by the B-train voices only, so no test voice is ever heard.

    python benchmarks/wake_word_ceiling.py [--positives 3000] [--steps 1500] [--widths 16,32,64 --widths 32,64,128]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from transferlab.experiments.wakeword.ceiling import KINDS, fit_detector, pretrained_detector, score_detector, training_set
from transferlab.data.prepared import load_prepared
from transferlab.models import create_model
from transferlab.params import load_params
from transferlab.system.runtime import configure


def detector_row(scores: dict) -> list[str]:
    by_kind = scores.get("frr_by_negative_kind", {})
    row = [scores["frr_at_far1"], scores["frr_at_far5"], scores["auroc"],
           *[by_kind.get(kind, float("nan")) for kind in KINDS]]
    return [f"{v:.3f}" for v in row]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--target", default="data/audio/target", help="prepared B (its test split is scored)")
    ap.add_argument("--backbone", default="models/audio/pretrained", help="also fine-tune this model fully "
                    "(skipped when absent)")
    ap.add_argument("--positives", type=int, default=3000)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--widths", action="append", help="widths of params' audio model, e.g. 16,32,64 (repeat)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    params = load_params(args.params)
    cfg = params.audio.finetune
    target = load_prepared(Path(args.target))
    test = target.rows("test")

    start = time.perf_counter()
    x, y, origin = training_set(params.audio.prepare, target, args.positives, configure(params.runtime))
    console = Console(width=max(Console().width, 150))  # the table is wide; a narrow pipe would wrap every cell
    verb = "synthesised" if origin.startswith("synthesised") else "took"  # a folder target: its training split
    console.print(f"{verb} {len(y)} training clips ({int(y.sum())} positives) in {time.perf_counter() - start:.0f} s "
                  f"({origin}); scoring {len(test)} test clips "
                  f"({int(target.labels[test].sum())} positives) by voices never trained on")

    arch = params.audio.pretrain.model
    candidates = [(f"{arch.name} {w} from scratch", "scratch", w) for w in (args.widths or ["16,32,64", "32,64,128"])]
    if Path(args.backbone).exists():
        candidates.append((f"{args.backbone}, full fine-tuning", "full", None))
    table = Table(title=f"Wake-word detector with {int(y.sum())} positives, {args.steps} steps")
    for col in ("model", "FRR@1%FAR", "FRR@5%FAR", "AUROC", "FRR@1% vs near misses", "vs other words",
                "vs noise", "train s"):
        table.add_column(col)
    for name, strategy, widths in candidates:
        if widths is None:
            model = pretrained_detector(Path(args.backbone), args.seed)
        else:
            torch.manual_seed(args.seed)
            model = create_model(arch.name, 2, widths=[int(v) for v in widths.split(",")], dropout=arch.dropout)
        seconds, _ = fit_detector(model, strategy, x, y, cfg, args.steps, args.batch_size, args.seed)
        scores = score_detector(model, target, [0.01, 0.05], params.audio.evaluate.threshold)
        table.add_row(name, *detector_row(scores), f"{seconds:.0f}")
        console.print(f"done: {name} ({seconds:.0f} s)")
    console.print(table)


if __name__ == "__main__":
    main()
