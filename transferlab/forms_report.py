"""Report sections for multi-task learning, distillation and few-shot learning."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from .claims import Claim, read_claims
from .io import read_json
from .multitask.summary import width_key
from .report import Document, Figure, _png, ci_cell, claims_frame

ARM_COLORS = {"shared": "#d62728", "separate": "#1f77b4", "masked": "#d62728", "as_negative": "#7f7f7f",
              "distilled": "#d62728", "hard": "#1f77b4", "protonet": "#d62728", "pretrained": "#1f77b4"}


def _errorbar(ax, x, g: pd.DataFrame, metric: str, label: str, scale: float = 100.0) -> None:
    ax.errorbar(x, g[metric] * scale, yerr=[(g[metric] - g[f"{metric}_low"]) * scale,
                                             (g[f"{metric}_high"] - g[metric]) * scale],
                marker="o", capsize=3, color=ARM_COLORS.get(label), label=label)


def multitask_section(doc: Document, result_dir: Path, metric: str, few_task: str) -> list[Claim]:
    arms = pd.read_csv(result_dir / "arms.csv")
    claims = read_claims(result_dir / "claims.json")
    doc.heading("Multi-task learning: one network, several outputs")
    doc.para("Scenes hold 0-4 objects of four types (digits standing in for pedestrian, car, stop sign, traffic light) "
             "among distractor digits and strokes; a scene's label is a 4-vector. The shared network has one sigmoid "
             "output per task and the logistic loss summed over labelled entries only; 'separate' trains one network "
             f"of the same body per task. Claims are judged on the mean {metric} over tasks, paired by seed.")
    doc.table(claims_frame(claims))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    widths = arms[arms["experiment"] == "width"]
    order = sorted(set(widths["width"]), key=width_key)
    for arm, g in widths.groupby("arm"):
        g = g.set_index("width").reindex(order).reset_index()
        _errorbar(axes[0], range(len(order)), g, metric, arm)
    axes[0].set_xticks(range(len(order)), order)
    axes[0].set_xlabel("body widths")
    missing = arms[arms["experiment"] == "missing_labels"]
    for arm, g in missing.groupby("arm"):
        _errorbar(axes[1], g["missing"] * 100, g.sort_values("missing"), metric, arm)
    axes[1].set_xlabel("label entries missing (%)")
    for ax in axes:
        ax.set_ylabel(f"mean {metric} over tasks (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    doc.figure(Figure("multitask", "Left: shared vs one network per task at each body width. Right: missing labels "
                      "summed out (masked) vs counted as negatives. Mean over seeds, 95% CI.", _png(fig)))
    table = arms.assign(**{m: [ci_cell(a, lo, hi) for a, lo, hi in zip(arms[m], arms[f"{m}_low"], arms[f"{m}_high"])]
                           for m in ("auroc", "ap", "accuracy")})
    table["missing"] = (table["missing"] * 100).round().astype(int).astype(str) + "%"
    doc.table(table[["experiment", "arm", "width", "missing", "params", "auroc", "ap", "accuracy"]])
    doc.para(f"Few-label rows are scores on '{few_task}' alone; the others are means over tasks. AUROC, average "
             "precision and accuracy (logit > 0) in %, mean [95% CI] over seeds.")
    return claims


def distill_section(doc: Document, result_dir: Path) -> list[Claim]:
    students = pd.read_csv(result_dir / "students.csv", dtype={"omitted": str})
    students["omitted"] = students["omitted"].fillna("")
    summary = read_json(result_dir / "summary.json")
    claims = read_claims(result_dir / "claims.json")
    doc.heading("Knowledge distillation: a small student imitates the teacher")
    doc.para(f"Teacher: the fine-tuned model '{summary['teacher']}'. The student learns from the target pools of each "
             "size, on hard labels or on the teacher's softened outputs mixed with them; one more pair of runs "
             "leaves a whole class out of the student's data.")
    doc.table(claims_frame(claims))
    doc.table(pd.DataFrame([
        {"model": "teacher", "parameters": summary["teacher_params"], "test accuracy (%)":
         f"{summary['teacher_accuracy'] * 100:.1f}",
         f"CPU ms per batch of {summary['latency_batch']} (1 thread)": f"{summary['teacher_latency_ms']:.1f}"},
        {"model": "student", "parameters": summary["student_params"], "test accuracy (%)": "see below",
         f"CPU ms per batch of {summary['latency_batch']} (1 thread)": f"{summary['student_latency_ms']:.1f}"}]))
    full = students[students["omitted"] == ""]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for kind, g in full.groupby("kind"):
        _errorbar(ax, g["per_class"], g.sort_values("per_class"), "accuracy", kind)
    ax.axhline(summary["teacher_accuracy"] * 100, color="black", ls=":", label="teacher")
    ax.set_xscale("log")
    ax.set_xlabel("transfer images per class (log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    doc.figure(Figure("distillation", "Student accuracy, hard labels vs distilled; mean over seeds, 95% CI.", _png(fig)))
    rows = []
    for r in students.itertuples(index=False):
        row = {"transfer data": f"{r.per_class}/class" + (f", no '{r.omitted}'" if r.omitted else ""),
               "student": r.kind, "accuracy (%)": ci_cell(r.accuracy, r.accuracy_low, r.accuracy_high)}
        if r.omitted:
            row["accuracy on the left-out class (%)"] = ci_cell(r.omitted_accuracy, r.omitted_accuracy_low,
                                                                r.omitted_accuracy_high)
        rows.append(row)
    doc.table(pd.DataFrame(rows).fillna(""))
    return claims


def fewshot_section(doc: Document, result_dir: Path) -> list[Claim]:
    table = pd.read_csv(result_dir / "episode_summary.csv")
    versus = pd.read_csv(result_dir / "versus_finetuning.csv")
    claims = read_claims(result_dir / "claims.json")
    doc.heading("Few-shot learning by meta-learning")
    doc.para("A prototypical network is trained on episodes of the source classes only and classifies target classes "
             "it never saw by the nearest class mean of K support examples. 'pretrained' uses the same rule on the "
             "supervised pre-trained backbone's features. Episodes are drawn from the target test split; both "
             "methods see the same episodes.")
    doc.table(claims_frame(claims))
    doc.table(pd.DataFrame([{"episodes": f"{r.shots}-shot", "method": r.method, "n": r.episodes,
                             "mean accuracy (%)": ci_cell(r.accuracy, r.accuracy_low, r.accuracy_high)}
                            for r in table.itertuples()]))
    if not versus.empty:
        doc.para("All classes at once, K labelled examples per class: the fine-tuning runs' own pools and test set "
                 "(mean over the same draws).")
        doc.table(versus.assign(accuracy=(versus["accuracy"] * 100).round(1)).rename(
            columns={"per_class": "K per class", "accuracy": "accuracy (%)"}))
    return claims
