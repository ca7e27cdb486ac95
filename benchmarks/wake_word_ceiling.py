"""How far can the wake-word test set be pushed with many positives? A diagnostic that prints figures, not a test.

The default sweep fine-tunes on 5-100 positives; this asks what the same detector reaches on the same test set
(`data/audio/target` from `dvc repro audio_prepare`) when positives are plentiful. It synthesises --positives
wake words and as many negatives (params.yaml's mix of near misses, other words and noise) spoken by the B-train
voices only, so no test voice is ever heard, trains each architecture from scratch (and, with --backbone, fully
fine-tunes the pre-trained model) and scores the test set as audio_evaluate does, also per kind of negative.

    python benchmarks/wake_word_ceiling.py [--positives 3000] [--steps 1500] [--widths 16,32,64 --widths 32,64,128]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from transferlab.artifacts import load_model
from transferlab.audio.build import speaker_roles, synth_target
from transferlab.audio.data import AudioSet
from transferlab.audio.evaluate import frr_per_negative_kind
from transferlab.params import AudioPrepareParams
from transferlab.data.prepared import load_prepared
from transferlab.detection import auroc, frr_at_far, positive_scores
from transferlab.engine import TrainConfig, predict_logits, train
from transferlab.models import create_model
from transferlab.params import load_params
from transferlab.transfer import apply_recipe


def plentiful_training_set(p: AudioPrepareParams, positives: int, workers: int) -> AudioSet:
    """`positives` wake words and as many negatives in the target's mix, spoken by B-train voices only (the
    prepared set's roles, so test voices stay unheard), drawn with another seed than the prepared set's."""
    t = p.target.model_copy(update={"positives_train": positives, "negatives_train": positives,
                                    "positives_test": 0, "negatives_test": 0})
    data, _ = synth_target(p.model_copy(update={"seed": p.seed + 1000, "target": t}),
                           speaker_roles(p.voices, p.seed), workers)
    return data


KINDS = ("near_miss", "other_word", "noise")


def detector_row(logits: torch.Tensor, labels: np.ndarray, kinds: np.ndarray) -> list[str]:
    scores = positive_scores(logits)
    by_kind = frr_per_negative_kind(scores, labels, kinds, 0.01)
    row = [frr_at_far(scores, labels, 0.01), frr_at_far(scores, labels, 0.05), auroc(scores, labels),
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
    labels, kinds = target.labels[test].numpy(), target.metadata["kind"].to_numpy()[test]

    start = time.perf_counter()
    data = plentiful_training_set(params.audio.prepare, args.positives, params.runtime.workers)
    x, y = torch.from_numpy(np.ascontiguousarray(data.clips)), torch.from_numpy(data.labels)
    console = Console(width=max(Console().width, 150))  # the table is wide; a narrow pipe would wrap every cell
    console.print(f"synthesised {len(y)} training clips ({int(y.sum())} positives) in "
                  f"{time.perf_counter() - start:.0f} s; scoring {len(test)} test clips "
                  f"({int(labels.sum())} positives) by voices never trained on")

    arch = params.audio.pretrain.model
    candidates = [(f"{arch.name} {w} from scratch", "scratch", w) for w in (args.widths or ["16,32,64", "32,64,128"])]
    if Path(args.backbone).exists():
        candidates.append((f"{args.backbone}, full fine-tuning", "full", None))
    table = Table(title=f"Wake-word detector with {int(y.sum())} positives, {args.steps} steps")
    for col in ("model", "FRR@1%FAR", "FRR@5%FAR", "AUROC", "FRR@1% vs near misses", "vs other words",
                "vs noise", "train s"):
        table.add_column(col)
    for name, strategy, widths in candidates:
        torch.manual_seed(args.seed)
        if widths is None:
            model, _ = load_model(Path(args.backbone))
        else:
            model = create_model(arch.name, 2, widths=[int(v) for v in widths.split(",")], dropout=arch.dropout)
        model.reset_classifier(2)
        recipe = apply_recipe(model, strategy, cfg)
        began = time.perf_counter()
        train(model, x, y, recipe.param_groups,
              TrainConfig(steps=args.steps, batch_size=args.batch_size, weight_decay=cfg.weight_decay, augment=True),
              torch.Generator().manual_seed(args.seed), "cpu")
        seconds = time.perf_counter() - began
        row = detector_row(predict_logits(model, target.samples[test]), labels, kinds)
        table.add_row(name, *row, f"{seconds:.0f}")
        console.print(f"done: {name} ({seconds:.0f} s)")
    console.print(table)


if __name__ == "__main__":
    main()
