"""Report section: a hand-built pipeline vs one end-to-end network, per track — reads the compare stage's
tables and its claims.json."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from transferlab.experiments.branches.compare import crossover
from transferlab.analysis.claims import CLAIMS_FILE, read_claims
from transferlab.report.document import Document, ci_cell
from transferlab.report.figures import crossover_figure


def compare_section(doc: Document, compare_dir: Path) -> None:
    curve = pd.read_csv(compare_dir / "curves.csv")
    diff = pd.read_csv(compare_dir / "differences.csv")
    stage1 = pd.read_json(compare_dir / "stage1.json", typ="series").to_dict()
    doc.section("compare", "Hand-built pipeline vs end-to-end network", read_claims(compare_dir / CLAIMS_FILE))
    doc.para("Both branches of a track train on the same nested subsets (same seed, same examples) and are scored on "
             "the same test set. Audio: MFCC+Δ+ΔΔ pooled over the detected speech region and its parts → logistic "
             "regression, vs the M5 1-D CNN on raw 16 kHz audio (test: held-out voices). Vision: a hand-designed "
             "localiser (connected components) crops the digit from a cluttered canvas → CNN, vs one CNN on the "
             "whole canvas.")
    loc = stage1.get("vision-pipeline") or {}
    if loc:
        doc.para(f"The localiser found the digit on {loc.get('localised_test', float('nan')) * 100:.1f}% of test "
                 "canvases: the pipeline's ceiling is set by its hand-designed stage.")
    for track in sorted(curve["track"].unique()):
        # The crossover line is drawn where the measured differences change sign (no verdict is made here).
        doc.figure(crossover_figure(curve, track, crossover(diff[diff["track"] == track])))
    table = curve.assign(cell=[ci_cell(m, lo, hi) for m, lo, hi in
                               zip(curve["accuracy"], curve["accuracy_low"], curve["accuracy_high"])])
    doc.table(table.pivot(index="branch", columns="size", values="cell").fillna("").reset_index())
