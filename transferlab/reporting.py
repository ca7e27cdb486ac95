"""Assemble the transfer report from the evaluation outputs (the figures live in report.py)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .claims import judge_claims
from .params import Params
from .report import (Document, claims_frame, accuracy_table, confusion_figure, gain_figure,
                     learning_curve_figure)


def build_report(params: Params, evaluation_dir: Path, confusion_csv: Path, validation: dict,
                 backbone_cards: dict[str, dict], num_classes: int, classes: list[str],
                 test_images: int) -> tuple[Document, list]:
    runs = pd.read_csv(evaluation_dir / "runs.csv")
    curves = pd.read_csv(evaluation_dir / "curves.csv")
    gains_path = evaluation_dir / "gains.csv"
    gains = pd.read_csv(gains_path) if gains_path.exists() else pd.DataFrame()
    main = str(runs["backbone"].iloc[0])
    ablations = [b for b in dict.fromkeys(runs["backbone"]) if b != main]
    source_images = {name: int(card["metrics"].get("train_images", 0)) for name, card in backbone_cards.items()}
    claims = judge_claims(runs, main=main, ablation=ablations[0] if ablations else None,
                          ablation_strategy=params.finetune.ablation_strategy, source_images=source_images,
                          num_classes=num_classes, confidence=params.evaluate.confidence,
                          min_effect=params.report.min_effect)

    doc = Document(params.report.title)
    main_curves = curves[curves["backbone"] == main]
    doc.heading("Summary")
    lines = []
    for n, g in main_curves.groupby("per_class"):
        transfer = g[g["strategy"] != "scratch"]
        scratch = g[g["strategy"] == "scratch"]
        if transfer.empty:
            continue
        best = transfer.loc[transfer["accuracy"].idxmax()]
        text = f"n={n}/class: best transfer is {best['strategy']} at {best['accuracy'] * 100:.1f}%"
        if not scratch.empty:
            s = scratch.iloc[0]
            text += f" vs scratch {s['accuracy'] * 100:.1f}% ({(best['accuracy'] - s['accuracy']) * 100:+.1f} pp)"
        lines.append(text)
    doc.para("; ".join(lines) + ".")
    doc.para(f"Source A: {source_images.get(main, '?')} training images of {len(backbone_cards[main]['classes'])} "
             f"classes (pre-training validation accuracy "
             f"{backbone_cards[main]['metrics'].get('val_accuracy', float('nan')) * 100:.1f}%). Target B: "
             f"{num_classes} classes; test set of {test_images} images (counted); "
             f"{params.finetune.seeds} seeds per cell, each seed its own draw of the labelled pool.")

    doc.heading("Claims of the course on transfer learning, judged from these runs")
    doc.table(claims_frame(claims))
    doc.para("Verdicts come from paired differences between strategies over seeds (same labelled pool per seed): "
             f"'holds' needs the {params.evaluate.confidence:.0%} CI above zero and an effect of at least "
             f"{params.report.min_effect * 100:.1f} pp; 'does not hold' needs it clearly below; anything else is "
             "inconclusive.")

    doc.heading("Learning curves")
    doc.figure(learning_curve_figure(curves, main, "accuracy"))
    doc.figure(learning_curve_figure(curves, main, "macro_f1"))
    doc.heading("Test accuracy (%), mean [95% CI] over seeds")
    doc.table(accuracy_table(curves))
    if not gains.empty:
        doc.heading("Transfer gain vs scratch")
        doc.figure(gain_figure(gains, main))
    if confusion_csv.exists():
        doc.heading(f"Confusion matrix at n={params.evaluate.focus_per_class}/class")
        doc.figure(confusion_figure(pd.read_csv(confusion_csv, dtype=str), classes))

    doc.heading("Backbones and data")
    doc.table(pd.DataFrame([{"backbone": name, "source train images": source_images[name],
                             "val accuracy (%)": f"{card['metrics'].get('val_accuracy', float('nan')) * 100:.1f}",
                             "parameters": card["metrics"].get("parameters"), "code": card.get("code_version")}
                            for name, card in backbone_cards.items()]))
    doc.para("Validation: " + ("all Great Expectations suites passed" if validation.get("success") else "FAILED") +
             f" ({sum(t['evaluated'] for t in validation.get('tables', {}).values())} expectations on "
             f"{len(validation.get('tables', {}))} tables).")
    timing = runs.groupby("strategy")["train_seconds"].sum().round(1)
    doc.para("Fine-tuning time by strategy (s, all sizes and seeds): " +
             ", ".join(f"{s} {t}" for s, t in timing.items()) + ".")
    return doc, claims
