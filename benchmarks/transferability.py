"""Transferability scores vs fine-tuning, wall time (not a test): prints figures side by side.

For one backbone, per pool size (draw 0): the time to score it (load, frozen features of the pool, LogME, LEEP,
NCE, H-score: transferlab.experiments.transferability.candidates, as the transferability stage does) beside one fine-tuning run of the same
backbone with the `full` strategy and the params' steps (transferlab.experiments.transfer.finetune.run_group, as the sweep runs it;
its fit alone and the whole run with the test-set predictions). Then the stage's whole cost for that backbone
(every pool size and draw, each image's features once) beside fine-tuning it once on each of those pools (the
timed draw-0 runs × the number of draws) and beside the single most expensive run.

The backbone is models/pretrained/src-full when present, else params' pretrain.model with random weights (wall time
does not depend on the weights; the figures say which). The target is a prepared one (`dvc repro prepare`).

    python benchmarks/transferability.py [--params params.yaml] [--target data/prepared/target] [--per-class 10]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from transferlab.models.artifacts import make_card, save_model
from transferlab.models.preprocessing import image_preprocessing
from transferlab.data.prepared import load_prepared
from transferlab.experiments.transfer.finetune import run_group, steps_for
from transferlab.analysis.sweep import RunSpec
from transferlab.models import create_model
from transferlab.params import load_params
from transferlab.system.runtime import configure
from transferlab.experiments.transferability.candidates import BODY, candidate_features, load_candidate, score_candidates, score_one


def random_backbone(params, out: Path) -> Path:
    """params' pre-training architecture with random weights, saved as a pre-trained model dir."""
    m = params.pretrain.model
    kwargs = {"widths": list(m.widths), "dropout": m.dropout}
    torch.manual_seed(0)
    save_model(out, create_model(m.name, num_classes=26, in_chans=params.prepare.channels, **kwargs),
               make_card(architecture={"name": m.name, "kwargs": kwargs}, classes=[chr(65 + i) for i in range(26)],
                         preprocessing=image_preprocessing(params.prepare.image_size, params.prepare.channels)))
    return out


def score_seconds(backbone: Path, target, rows: np.ndarray, cfg, device) -> float:
    start = time.perf_counter()
    cand = load_candidate("backbone", backbone)
    feats = candidate_features(cand, target.samples, np.sort(rows), device, cfg.batch_size, cuts=False)
    score_one(feats.cuts[BODY], feats.probs, target.labels.numpy()[np.sort(rows)], cfg)
    return time.perf_counter() - start


def finetune_seconds(backbone: Path, target, target_dir: Path, n: int, cfg, device, scratch: Path):
    start = time.perf_counter()
    (info, _, _), = run_group([RunSpec("backbone", "full", n, 0)], backbone, target, target_dir, cfg, device, scratch)
    return info["train_seconds"], time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--target", default="data/prepared/target")
    ap.add_argument("--backbone", default="models/pretrained/src-full")
    ap.add_argument("--per-class", type=int, action="append", help="pool sizes to time (default: params')")
    args = ap.parse_args()
    params = load_params(args.params)
    device = configure(params.runtime)  # the runtime context: device, precision, workers
    cfg, tcfg = params.finetune, params.transferability
    target_dir = Path(args.target)
    if not (target_dir / "metadata.csv").exists():
        raise SystemExit(f"{target_dir}: no prepared target; run `dvc repro prepare` (or pass --target)")
    target = load_prepared(target_dir)
    scratch = Path(tempfile.mkdtemp(prefix="transferability-bench-"))
    backbone = Path(args.backbone)
    what = f"{backbone} (pre-trained)"
    if not (backbone / "card.json").exists():
        backbone = random_backbone(params, scratch / "backbone")
        m = params.pretrain.model
        what = f"{m.name} {m.widths} with random weights ({args.backbone} absent)"
    sizes = args.per_class or list(params.prepare.target.pool_sizes)
    console = Console(width=max(Console().width, 130))
    console.print(f"backbone: {what}; target: {target_dir} ({len(target.rows('train'))} training images); "
                  f"device {device.device} ({device.precision}), {torch.get_num_threads()} threads", highlight=False)
    score_seconds(backbone, target, target.pool(0, sizes[0]), tcfg, device)  # warm-up: imports, first kernels
    table = Table("per class", "images", "scores s", "fine-tune steps", "fine-tune fit s", "fine-tune run s",
                  "fit / scores", title="One backbone, one pool (draw 0): scores vs one full fine-tuning run")
    worst, runs = (0.0, 0), 0.0
    for n in sizes:
        rows = target.pool(0, n)
        s = score_seconds(backbone, target, rows, tcfg, device)
        fit_s, run_s = finetune_seconds(backbone, target, target_dir, n, cfg, device, scratch / "models")
        worst, runs = max(worst, (run_s, n)), runs + run_s
        table.add_row(str(n), str(len(rows)), f"{s:.2f}", str(steps_for(cfg, len(rows))), f"{fit_s:.1f}",
                      f"{run_s:.1f}", f"{fit_s / s:.0f}×")
    console.print(table)
    no_cuts = tcfg.model_copy(update={"layer_cuts": False})
    draws = min(cfg.seeds, int(target.pools["draw"].nunique()))  # the draws the stage scores (a target has them)
    _, timing = score_candidates({"backbone": backbone}, target, sizes, draws, no_cuts, device)
    t = timing.set_index("backbone").loc["backbone"]
    pools = len(sizes) * draws
    console.print(f"whole stage for this backbone: {pools} pools ({len(sizes)} sizes × {draws} draws), "
                  f"{int(t['images'])} images' features once: {t['seconds']:.2f} s (load + features "
                  f"{t['extract_seconds']:.2f} s, scores {t['score_seconds']:.2f} s)", highlight=False)
    console.print(f"  vs full fine-tuning on the same {pools} pools ≈ {runs * draws:.0f} s (the runs above × {draws} "
                  f"draws): {runs * draws / t['seconds']:.0f}× faster", highlight=False)
    console.print(f"  vs the single most expensive run (n={worst[1]}/class) {worst[0]:.1f} s: "
                  f"{worst[0] / t['seconds']:.1f}×", highlight=False)


if __name__ == "__main__":
    main()
