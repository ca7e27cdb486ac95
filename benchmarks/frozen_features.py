"""Frozen-feature cache benchmark (not a test): prints figures, with and without the cache side by side in one run.

Speed: head-only training steps/s through the engine on the full network vs on cached features, the one-off
extraction, and whole `head` fits, for the default vision backbone (params.yaml pretrain.model on 28×28 grey
images; models/pretrained/src-full when present, else random weights) and tv:resnet18 at 224 px (the grey 28×28
images resized inside the network by its input adapter).

Accuracy (--accuracy): the `head` strategy's test accuracy, uncached (fresh augmentation every step) vs cached
with 0 (clean images), 2, 4, 8, 16 augmented views per image, on a pre-trained backbone and a prepared target.

    python benchmarks/frozen_features.py [--quick]
    python benchmarks/frozen_features.py --accuracy --backbone models/pretrained/src-full --target data/prepared/target
"""
from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from transferlab.models.artifacts import load_model
from transferlab.data.prepared import load_prepared
from transferlab.core.engine import TrainConfig, predict_logits, train
from transferlab.core.frozen import extract_features, feature_head
from transferlab.experiments.transfer.finetune import steps_for
from transferlab.experiments.transfer.rules import fit
from transferlab.models import create_model
from transferlab.params import load_params
from transferlab.core.recipes import apply_recipe

VIEWS = (0, 2, 4, 8, 16)


def _digits(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n grey 28×28 images and labels (random pixels: speed does not depend on what they show)."""
    gen = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=gen), torch.arange(n) % 10


def _backbones(params_file: str) -> list[tuple[str, torch.nn.Module]]:
    p = load_params(params_file).pretrain.model
    full = Path("models/pretrained/src-full")
    if full.exists():
        vision, _ = load_model(full)
        vision.reset_classifier(10)
        name = f"{p.name} {p.widths} (pre-trained)"
    else:
        vision = create_model(p.name, 10, widths=list(p.widths), dropout=p.dropout)
        name = f"{p.name} {p.widths} (random weights)"
    resnet = create_model("tv:resnet18", 10, in_chans=1, resize_size=256, crop_size=224)
    return [(f"{name}, 28 px", vision), ("tv:resnet18 (random weights), 224 px", resnet)]


def _rate(fn, steps: int) -> float:
    start = time.perf_counter()
    fn()
    return steps / (time.perf_counter() - start)


def bench_speed(params_file: str, steps: int, resnet_steps: int, images: int, fit_all: bool) -> Table:
    cfg = load_params(params_file).finetune
    table = Table("backbone", "uncached steps/s", "cached steps/s", "speed-up", f"extract {images} images",
                  "head fit uncached", "head fit cached",
                  title=f"head-only training, batch {cfg.batch_size}, {torch.get_num_threads()} thread(s); head fits: "
                        f"100 images, augment {cfg.augment}, {cfg.feature_views} views")
    samples, labels = _digits(images)
    for name, model in _backbones(params_file):
        n = resnet_steps if "resnet" in name else steps
        recipe = apply_recipe(model, "head", cfg)
        head = feature_head(model)
        assert head is not None, f"{name}: the head recipe should leave a fixed body"
        # Steps alone, no augmentation either side: what one step costs with and without the body.
        plain = TrainConfig(steps=n, batch_size=cfg.batch_size, weight_decay=cfg.weight_decay)
        gen = torch.Generator().manual_seed(0)
        train(model, samples, labels, recipe.param_groups, TrainConfig(steps=1, batch_size=cfg.batch_size), gen)
        uncached = _rate(lambda: train(model, samples, labels, recipe.param_groups, plain, gen), n)
        start = time.perf_counter()
        features = extract_features(model, samples)
        extract = time.perf_counter() - start
        cached_steps = 50 * steps
        cached = _rate(lambda: train(head, features, labels, recipe.param_groups,
                                     TrainConfig(steps=cached_steps, batch_size=cfg.batch_size), gen,
                                     inputs=lambda x, d: x.to(d)), cached_steps)
        # Whole fits as the sweep runs them (params' augmentation and views), extraction included: 10 per class and
        # the sweep's steps for 100 images (--quick: fewer on the large backbone, whose uncached steps crawl).
        fit_steps = steps_for(cfg, 100) if fit_all or "resnet" not in name else 2 * resnet_steps
        fits = []
        for on in (False, True):
            m = copy.deepcopy(model)
            m.reset_classifier(10)
            start = time.perf_counter()
            fit(m, "head", cfg.model_copy(update={"cached_features": on}), samples[:100], labels[:100], fit_steps,
                torch.Generator().manual_seed(0))
            fits.append(f"{time.perf_counter() - start:.2f} s / {fit_steps} steps")
        table.add_row(name, f"{uncached:,.2f}", f"{cached:,.0f}", f"{cached / uncached:,.0f}×",
                      f"{extract:.2f} s ({images / extract:,.1f}/s)", *fits)
    return table


def bench_accuracy(params_file: str, backbone: Path, target_dir: Path, seeds: int, pools: list[int]) -> Table:
    cfg = load_params(params_file).finetune
    target = load_prepared(target_dir)
    draws = int(target.pools["draw"].max()) + 1
    pools = pools or sorted(int(k) for k in target.pools["per_class"].unique())
    variants = [("uncached", {"cached_features": False})] + [
        (f"cached, {v} views", {"cached_features": True, "feature_views": v}) for v in VIEWS]
    table = Table("variant", *[f"{k}/class" for k in pools], "mean", "Δ vs uncached ± s.e.", "fit s",
                  title=f"head strategy test accuracy, {backbone}, {seeds} seeds (mean; Δ paired by pool and seed)")
    test = target.rows("test")
    reference = None
    for label, update in variants:
        c = cfg.model_copy(update=update)
        accs, seconds = {k: [] for k in pools}, 0.0
        for k in pools:
            for seed in range(seeds):
                torch.manual_seed(10_000 + seed)  # as finetune.run_group: paired head init and data order
                model, _ = load_model(backbone)
                model.reset_classifier(len(target.classes))
                rows = target.pool(seed % draws, k)
                start = time.perf_counter()
                fit(model, "head", c, target.samples[rows], target.labels[rows], steps_for(c, len(rows)),
                    torch.Generator().manual_seed(20_000 + seed))
                seconds += time.perf_counter() - start
                pred = predict_logits(model, target.samples[test]).argmax(1)
                accs[k].append(float((pred == target.labels[test]).float().mean()))
        means = [np.mean(accs[k]) for k in pools]
        flat = np.array([a for k in pools for a in accs[k]])
        reference = flat if reference is None else reference
        diff = flat - reference
        delta = f"{diff.mean():+.4f} ± {diff.std(ddof=1) / np.sqrt(len(diff)):.4f}" if len(diff) > 1 else "–"
        table.add_row(label, *[f"{m:.3f}" for m in means], f"{np.mean(means):.3f}", delta, f"{seconds:.1f}")
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default; the sweep's "
                    "CPU workers run one each)")
    ap.add_argument("--accuracy", action="store_true", help="compare accuracy instead of speed")
    ap.add_argument("--backbone", type=Path, default=Path("models/pretrained/src-full"))
    ap.add_argument("--target", type=Path, default=Path("data/prepared/target"))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--pools", type=int, nargs="*", default=[], help="per-class pool sizes (default: all)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.accuracy:
        table = bench_accuracy(args.params, args.backbone, args.target, args.seeds, args.pools)
    else:
        table = bench_speed(args.params, 5 if args.quick else 20, 2 if args.quick else 5, 64 if args.quick else 256,
                            not args.quick)
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
