"""Report section: wake-word transfer (pre-train on spoken words A, detect one word B) — reads the audio
evaluation stage's tables and its claims.json."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..claims import CLAIMS_FILE, read_claims
from ..detection import far_key
from .document import Document
from .figures import det_figure, learning_curve_figure


def audio_section(doc: Document, eval_dir: Path, cfg, card: dict, validation: dict, wake_word: str) -> None:
    """`cfg` is the audio evaluate params (far_targets, threshold, focus_positives): they name the columns."""
    runs = pd.read_csv(eval_dir / "runs.csv")
    curves = pd.read_csv(eval_dir / "curves.csv")
    det = pd.read_csv(eval_dir / "det.csv")
    key = far_key(cfg.far_targets[0])
    main = str(runs["backbone"].iloc[0])
    doc.section("audio", "Audio: spoken words (A) → wake word (B)", read_claims(eval_dir / CLAIMS_FILE))
    doc.para(f"Source A: {card['metrics'].get('train_images', '?')} synthesised clips of {len(card['classes'])} "
             f"words; pre-training accuracy on held-out voices "
             f"{card['metrics'].get('val_accuracy', float('nan')) * 100:.1f}%. "
             f"Target B: detect '{wake_word}' among other words, near misses and noise, "
             f"spoken by voices in neither training set. Validation: "
             + ("all Great Expectations suites passed" if validation.get("success") else "FAILED") + ".")
    doc.figure(learning_curve_figure(curves, main, key, xlabel="labelled positives (log scale)",
                                     name="audio_frr", ylabel=f"false-reject rate at {cfg.far_targets[0]:.0%} FAR (%)"))
    doc.figure(learning_curve_figure(curves, main, "auroc", xlabel="labelled positives (log scale)",
                                     name="audio_auroc", ylabel="AUROC (%)"))
    doc.figure(det_figure(det, cfg.focus_positives))
    cols = ["auroc", *[far_key(f) for f in cfg.far_targets], "frr_at_threshold", "fa_per_hour"]
    rows = []
    for r in curves.itertuples(index=False):
        row = {"strategy": r.strategy, "positives": r.per_class}
        for c in cols:
            m, lo, hi = getattr(r, c), getattr(r, f"{c}_low"), getattr(r, f"{c}_high")
            scale = 1 if c == "fa_per_hour" else 100  # a count per hour, not a rate
            row[c] = f"{m * scale:.1f} [{lo * scale:.1f}, {hi * scale:.1f}]"
        rows.append(row)
    doc.table(pd.DataFrame(rows).sort_values(["positives", "strategy"]))
    doc.para(f"Rates in %, mean [95% CI] over seeds; fa_per_hour counts false accepts per hour of negative audio at "
             f"the operating threshold P(wake word) ≥ {cfg.threshold}, where frr_at_threshold is also measured.")
    by_kind = eval_dir / "by_negative_kind.csv"
    if by_kind.exists():
        _negative_kind_table(doc, pd.read_csv(by_kind), main, cfg.far_targets[0])


def _negative_kind_table(doc: Document, table: pd.DataFrame, main: str, far: float) -> None:
    """FRR against each kind of negative alone, and which kind is hardest."""
    table = table[table["backbone"] == main]
    if table.empty:
        return
    wide = table.assign(cell=[f"{m * 100:.1f} [{lo * 100:.1f}, {hi * 100:.1f}]" for m, lo, hi in
                              zip(table["frr"], table["frr_low"], table["frr_high"])])
    doc.table(wide.pivot(index=["per_class", "strategy"], columns="negatives", values="cell").reset_index()
              .rename(columns={"per_class": "positives"}))
    hardest = table.groupby("negatives")["frr"].mean()
    doc.para(f"False-reject rate (%) at {far:.0%} FAR against one kind of negative at a time. Hardest: "
             f"'{hardest.idxmax()}' (mean FRR {hardest.max() * 100:.0f}% over strategies and pools); easiest: "
             f"'{hardest.idxmin()}' ({hardest.min() * 100:.0f}%).")
