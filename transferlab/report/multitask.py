"""Report section: multi-task learning on scenes (one network, several outputs) — reads the multitask stage's
arm table, and its claims judged here from the stage's runs (a reporting threshold re-runs no training)."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from transferlab.experiments.multitask.summary import multitask_claims
from transferlab.report.document import Document, ci_cell
from transferlab.report.figures import Figure, errorbar, png


def width_key(width: str) -> list[int]:
    """'8-16-32' → [8, 16, 32]: body widths sort by size (kept here so the report imports no training code)."""
    return [int(w) for w in str(width).split("-")]


def multitask_section(doc: Document, result_dir: Path, metric: str, few_task: str, confidence: float,
                      min_effect: float) -> None:
    arms = pd.read_csv(result_dir / "arms.csv")
    claims = multitask_claims(pd.read_csv(result_dir / "runs.csv"), metric, few_task, confidence, min_effect)
    doc.section("multitask", "Multi-task learning: one network, several outputs", claims)
    doc.para("Scenes hold 0-4 objects of four types (digits standing in for pedestrian, car, stop sign, traffic light) "
             "among distractor digits and strokes; a scene's label is a 4-vector. The shared network has one sigmoid "
             "output per task and the logistic loss summed over labelled entries only; 'separate' trains one network "
             f"of the same body per task. Claims are judged on the mean {metric} over tasks, paired by seed.")
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    widths = arms[arms["experiment"] == "width"]
    order = sorted(set(widths["width"]), key=width_key)
    for arm, g in widths.groupby("arm"):
        g = g.set_index("width").reindex(order).reset_index()
        errorbar(axes[0], range(len(order)), g, metric, arm)
    axes[0].set_xticks(range(len(order)), order)
    axes[0].set_xlabel("body widths")
    missing = arms[arms["experiment"] == "missing_labels"]
    for arm, g in missing.groupby("arm"):
        errorbar(axes[1], g["missing"] * 100, g.sort_values("missing"), metric, arm)
    axes[1].set_xlabel("label entries missing (%)")
    for ax in axes:
        ax.set_ylabel(f"mean {metric} over tasks (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    doc.figure(Figure("multitask", "Left: shared vs one network per task at each body width. Right: missing labels "
                      "summed out (masked) vs counted as negatives. Mean over seeds, 95% CI.", png(fig)))
    table = arms.assign(**{m: [ci_cell(a, lo, hi) for a, lo, hi in zip(arms[m], arms[f"{m}_low"], arms[f"{m}_high"])]
                           for m in ("auroc", "ap", "accuracy")})
    table["missing"] = (table["missing"] * 100).round().astype(int).astype(str) + "%"
    doc.table(table[["experiment", "arm", "width", "missing", "params", "auroc", "ap", "accuracy"]])
    doc.para(f"Few-label rows are scores on '{few_task}' alone; the others are means over tasks. AUROC, average "
             "precision and accuracy (logit > 0) in %, mean [95% CI] over seeds.")
