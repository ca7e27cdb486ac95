"""Per-run test metrics and their aggregation into learning curves with confidence intervals."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file
from torchmetrics.functional.classification import multiclass_confusion_matrix, multiclass_f1_score

from transferlab.analysis.sweep import PREDICTIONS_FILE, RUNS_FILE
from transferlab.analysis.stats import mean_ci, paired_difference


def run_metrics(finetune_dir: Path, num_classes: int) -> tuple[pd.DataFrame, dict[str, list[list[int]]]]:
    runs = pd.read_csv(finetune_dir / RUNS_FILE)
    logits = load_file(str(finetune_dir / PREDICTIONS_FILE))
    labels = logits["test_labels"]
    acc, f1, confusion = [], [], {}
    for run_id in runs["run_id"]:
        pred = logits[run_id].argmax(1)
        acc.append(float((pred == labels).float().mean()))
        f1.append(float(multiclass_f1_score(pred, labels, num_classes=num_classes, average="macro")))
        confusion[run_id] = multiclass_confusion_matrix(pred, labels, num_classes=num_classes).tolist()
    runs = runs.assign(accuracy=np.round(acc, 5), macro_f1=np.round(f1, 5))
    return runs, confusion


def learning_curves(runs: pd.DataFrame, confidence: float, metrics: tuple[str, ...] = ("accuracy", "macro_f1"),
                    unbounded: tuple[str, ...] = ()) -> pd.DataFrame:
    """Mean and CI over seeds of each metric per (backbone, strategy, per_class)."""
    rows = []
    for (backbone, strategy, n), g in runs.groupby(["backbone", "strategy", "per_class"], sort=False):
        row = {"backbone": backbone, "strategy": strategy, "per_class": int(n), "seeds": len(g)}
        for metric in metrics:
            e = mean_ci(g[metric], confidence)
            # Rates live in [0, 1]; a t-interval from few seeds can overshoot, so clip it there.
            high = e.high if metric in unbounded else min(e.high, 1.0)
            row.update({metric: e.mean, f"{metric}_low": max(e.low, 0.0), f"{metric}_high": high})
        rows.append(row)
    return pd.DataFrame(rows)


def paired_gains(runs: pd.DataFrame, baseline: tuple[str, str], confidence: float,
                 metric: str = "accuracy") -> pd.DataFrame:
    """A metric minus the baseline's (same seed, same pool), with a paired CI, per run group."""
    base_bb, base_strategy = baseline
    base = runs[(runs["backbone"] == base_bb) & (runs["strategy"] == base_strategy)]
    rows = []
    for (backbone, strategy, n), g in runs.groupby(["backbone", "strategy", "per_class"], sort=False):
        if (backbone, strategy) == baseline:
            continue
        b = base[base["per_class"] == n].set_index("seed")[metric]
        g = g.set_index("seed")[metric]
        seeds = sorted(set(g.index) & set(b.index))
        if not seeds:
            continue
        d = paired_difference(g.loc[seeds], b.loc[seeds], confidence)
        rows.append({"backbone": backbone, "strategy": strategy, "per_class": int(n), "versus": base_strategy,
                     "gain": d.mean, "gain_low": d.low, "gain_high": d.high, "seeds": d.n})
    return pd.DataFrame(rows)


def summary_metrics(curves: pd.DataFrame, main_backbone: str) -> dict:
    """metrics/evaluate.json (read by the report's summary): accuracy per strategy and size, best transfer, gain."""
    out: dict = {}
    main = curves[curves["backbone"] == main_backbone]
    for n, g in main.groupby("per_class"):
        row = {s: round(float(a), 4) for s, a in zip(g["strategy"], g["accuracy"])}
        transfer = g[g["strategy"] != "scratch"]
        if not transfer.empty:
            best = transfer.loc[transfer["accuracy"].idxmax()]
            row["best_transfer"] = str(best["strategy"])
            row["best_transfer_accuracy"] = round(float(best["accuracy"]), 4)
            if "scratch" in row:
                row["gain_vs_scratch"] = round(float(best["accuracy"]) - row["scratch"], 4)
        out[f"n{int(n)}"] = row
    for backbone, g in curves[curves["backbone"] != main_backbone].groupby("backbone"):
        out[f"ablation_{backbone}"] = {f"n{int(n)}": round(float(a), 4) for n, a in zip(g["per_class"], g["accuracy"])}
    return out


def confusion_rows(runs: pd.DataFrame, confusion: dict, classes: list[str], per_class: int,
                   main_backbone: str) -> pd.DataFrame:
    """(actual, predicted) pairs of the best transfer strategy's seed-0 run at `per_class`, for dvc plots."""
    cand = runs[(runs["backbone"] == main_backbone) & (runs["per_class"] == per_class) & (runs["strategy"] != "scratch")]
    if cand.empty:
        cand = runs[runs["per_class"] == per_class]
    best = cand.groupby("strategy")["accuracy"].mean().idxmax()
    run_id = cand[(cand["strategy"] == best)].sort_values("seed")["run_id"].iloc[0]
    matrix = torch.tensor(confusion[run_id])
    pairs = [(classes[i], classes[j]) for i in range(len(classes)) for j in range(len(classes))
             for _ in range(int(matrix[i, j]))]
    return pd.DataFrame(pairs, columns=["actual", "predicted"]).assign(run_id=run_id)
