"""Report section: knowledge distillation (a small student imitates the fine-tuned teacher) — reads the distill
stage's tables, and its claims judged here from the stage's runs."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from transferlab.experiments.distillation.summary import distill_claims, read_runs
from transferlab.system.io import read_json
from transferlab.report.document import Document, ci_cell
from transferlab.report.figures import Figure, errorbar, png


def distill_section(doc: Document, result_dir: Path, confidence: float, min_effect: float) -> None:
    students = pd.read_csv(result_dir / "students.csv", dtype={"omitted": str})
    students["omitted"] = students["omitted"].fillna("")
    summary = read_json(result_dir / "summary.json")
    doc.section("distill", "Knowledge distillation: a small student imitates the teacher",
                distill_claims(read_runs(result_dir / "runs.csv"), confidence, min_effect))
    doc.para(f"Teacher: the fine-tuned model '{summary['teacher']}'. The student learns from the target pools of each "
             "size, on hard labels or on the teacher's softened outputs mixed with them; one more pair of runs "
             "leaves a whole class out of the student's data.")
    latency = f"CPU ms per batch of {summary['latency_batch']} (1 thread)"
    doc.table(pd.DataFrame([
        {"model": "teacher", "parameters": summary["teacher_params"],
         "test accuracy (%)": f"{summary['teacher_accuracy'] * 100:.1f}",
         latency: f"{summary['teacher_latency_ms']:.1f}"},
        {"model": "student", "parameters": summary["student_params"], "test accuracy (%)": "see below",
         latency: f"{summary['student_latency_ms']:.1f}"}]))
    full = students[students["omitted"] == ""]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for kind, g in full.groupby("kind"):
        errorbar(ax, g["per_class"], g.sort_values("per_class"), "accuracy", kind)
    ax.axhline(summary["teacher_accuracy"] * 100, color="black", ls=":", label="teacher")
    ax.set_xscale("log")
    ax.set_xlabel("transfer images per class (log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    doc.figure(Figure("distillation", "Student accuracy, hard labels vs distilled; mean over seeds, 95% CI.", png(fig)))
    rows = []
    for r in students.itertuples(index=False):
        row = {"transfer data": f"{r.per_class}/class" + (f", no '{r.omitted}'" if r.omitted else ""),
               "student": r.kind, "accuracy (%)": ci_cell(r.accuracy, r.accuracy_low, r.accuracy_high)}
        if r.omitted:
            row["accuracy on the left-out class (%)"] = ci_cell(r.omitted_accuracy, r.omitted_accuracy_low,
                                                                r.omitted_accuracy_high)
        rows.append(row)
    doc.table(pd.DataFrame(rows).fillna(""))
