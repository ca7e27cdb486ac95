"""Report section: image transfer (pre-train on source A, fine-tune on target B) — reads the evaluation stage's
tables and its claims.json."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from transferlab.analysis.claims import CLAIMS_FILE, read_claims
from transferlab.params.base import REFINEMENTS, base_strategy
from transferlab.report.document import Document, ci_cell
from transferlab.report.extrapolation import EXTRAPOLATION_CLAIMS
from transferlab.report.figures import confusion_figure, gain_figure, learning_curve_figure
from transferlab.report.sourcecurve import source_curve_part
from transferlab.report.training import stopping_para


def accuracy_table(curves: pd.DataFrame) -> pd.DataFrame:
    """Strategies × pool sizes, 'mean [95% CI]' accuracy in %; ablation backbones labelled by their source."""
    curves = curves.copy()
    curves["cell"] = [ci_cell(m, lo, hi) for m, lo, hi in
                      zip(curves["accuracy"], curves["accuracy_low"], curves["accuracy_high"])]
    curves["row"] = [s if b == curves["backbone"].iloc[0] else f"{s} ({b} source)"
                     for b, s in zip(curves["backbone"], curves["strategy"])]
    table = curves.pivot(index="row", columns="per_class", values="cell")
    table = table.reindex(list(dict.fromkeys(curves["row"])))
    table.columns = [f"n={c}/class" for c in table.columns]
    return table.reset_index().rename(columns={"row": "strategy"})


def _summary(curves: pd.DataFrame) -> str:
    """Best transfer strategy against scratch at each pool size, in words."""
    lines = []
    for n, g in curves.groupby("per_class"):
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
    return "; ".join(lines) + "."


def backbone_table(cards: dict[str, dict]) -> pd.DataFrame:
    """Where each backbone came from: our pre-training (source images, validation accuracy) or an import (the
    weights file and its md5, as the card records them)."""
    rows = []
    for name, c in cards.items():
        imported = c.get("imported")
        val = c["metrics"].get("val_accuracy")
        rows.append({"backbone": name,
                     "source": (f"imported {imported['kind']} {imported.get('arch') or ''}".strip() if imported
                                else f"pre-trained here on {c['metrics'].get('train_images', '?')} samples"),
                     "weights file (md5)": f"{imported['file']} ({imported['md5'][:8]})" if imported else "",
                     "val accuracy (%)": f"{val * 100:.1f}" if val is not None else "",
                     "parameters": c["metrics"].get("parameters"), "code": _short_commit(c.get("code_version"))})
    return pd.DataFrame(rows)


def _short_commit(version: str | None) -> str:
    """A card's code version as git shows it short (12 hex digits, '+dirty' kept): the full 40 run off the page."""
    rev, plus, rest = (version or "").partition("+")
    return rev[:12] + plus + rest


def vision_section(doc: Document, evaluation_dir: Path, confusion_csv: Path, validation: dict,
                   backbone_cards: dict[str, dict], classes: list[str], test_images: int, *, seeds: int,
                   focus_per_class: int) -> None:
    runs = pd.read_csv(evaluation_dir / "runs.csv")
    curves = pd.read_csv(evaluation_dir / "curves.csv")
    gains_path = evaluation_dir / "gains.csv"
    gains = pd.read_csv(gains_path) if gains_path.exists() else pd.DataFrame()
    main = str(runs["backbone"].iloc[0])
    card = backbone_cards[main]
    source_images = {name: int(c["metrics"].get("train_images", 0)) for name, c in backbone_cards.items()}

    # The held-out extrapolation claim is judged by the same stage but shown with its figure (extrapolation.py).
    doc.section("vision", "Images: transfer from source A to target B",
                [c for c in read_claims(evaluation_dir / CLAIMS_FILE) if c.key not in EXTRAPOLATION_CLAIMS])
    doc.para(_summary(curves[curves["backbone"] == main]))
    doc.para(f"Source A: {source_images.get(main, '?')} training images of {len(card['classes'])} "
             f"classes (pre-training validation accuracy "
             f"{card['metrics'].get('val_accuracy', float('nan')) * 100:.1f}%). Target B: "
             f"{len(classes)} classes; test set of {test_images} images (counted); "
             f"{seeds} seeds per cell, each seed its own draw of the labelled pool.")
    doc.heading("Learning curves")
    # The refinements of full fine-tuning get their own figure (beside full and scratch): twelve curves on one
    # plot would hide the comparison each of them is about.
    refined = curves["strategy"].map(base_strategy).isin(REFINEMENTS) & (curves["backbone"] == main)
    basic = curves[~refined]
    doc.figure(learning_curve_figure(basic, main, "accuracy"))
    doc.figure(learning_curve_figure(basic, main, "macro_f1"))
    if refined.any():
        reference = curves[(curves["backbone"] == main) & curves["strategy"].isin(["scratch", "full"])]
        doc.figure(learning_curve_figure(
            pd.concat([reference, curves[refined]]), main, "accuracy", name="learning_curve_refinements",
            caption="The refinements of full fine-tuning (LP-FT, L2-SP, surgical per block, WiSE-FT per α) "
                    "beside full fine-tuning and scratch; mean over seeds with 95% CI band."))
    doc.heading("Test accuracy (%), mean [95% CI] over seeds")
    doc.table(accuracy_table(curves))
    if not gains.empty:
        doc.heading("Transfer gain vs scratch")
        doc.figure(gain_figure(gains, main))
    source_curve_part(doc, evaluation_dir)
    if confusion_csv.exists():
        doc.heading(f"Confusion matrix at n={focus_per_class}/class")
        doc.figure(confusion_figure(pd.read_csv(confusion_csv, dtype=str), classes))

    doc.heading("Backbones and data")
    doc.table(backbone_table(backbone_cards))
    doc.para("Validation: " + ("all Great Expectations suites passed" if validation.get("success") else "FAILED") +
             f" ({sum(t['evaluated'] for t in validation.get('tables', {}).values())} expectations on "
             f"{len(validation.get('tables', {}))} tables).")
    stopping = stopping_para(runs, ["backbone", "strategy", "per_class"])
    if stopping:
        doc.para(stopping)
    timing = runs.groupby("strategy")["train_seconds"].sum().round(1)
    doc.para("Fine-tuning time by strategy (s, all sizes and seeds): " +
             ", ".join(f"{s} {t}" for s, t in timing.items()) + ".")
