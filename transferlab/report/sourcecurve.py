"""Report part of the vision section: the source-size curve (gain over scratch vs source images, one line per target
size, B's size marked) with the permuted-pixel control beside it — reads the evaluate stage's source_curve.csv."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from transferlab.analysis.sourcecurve import SOURCE_CURVE_FILE
from transferlab.report.document import Document, ci_cell
from transferlab.report.figures import Figure, png


def source_curve_figure(table: pd.DataFrame) -> Figure:
    fig, ax = plt.subplots(figsize=(7.5, 4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (n, at) in enumerate(table.groupby("per_class")):
        color = colors[i % len(colors)]
        curve = at[~at["control"]].sort_values("source_images")
        err = np.vstack([(curve["gain"] - curve["gain_low"]) * 100, (curve["gain_high"] - curve["gain"]) * 100])
        ax.errorbar(curve["source_images"], curve["gain"] * 100, yerr=err, marker="o", capsize=3, color=color,
                    label=f"n={n}/class")
        b_images = int(at["target_images"].iloc[0])
        ax.axvline(b_images, color=color, ls=":", lw=1)
        ax.annotate(f"B = {b_images:,}", (b_images, 1.0), xycoords=("data", "axes fraction"), rotation=90,
                    va="top", ha="right", fontsize=7, color=color)
        for r in at[at["control"]].itertuples():
            ax.errorbar([r.source_images], [r.gain * 100], yerr=[[(r.gain - r.gain_low) * 100],
                                                               [(r.gain_high - r.gain) * 100]],
                        marker="x", ms=9, capsize=3, color=color, ls="none",
                        label=f"n={n}/class, permuted-pixel control")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("source images the backbone was pre-trained on (log)")
    ax.set_ylabel("accuracy gain vs scratch (pp)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    strategy = table["strategy"].iloc[0]
    return Figure("source_curve", f"Transfer gain ({strategy} fine-tuning − scratch, paired by seed, 95% CI) against "
                  "the number of source images; dotted lines mark B's training images at each target size; ✕ the "
                  "control (the whole source, pixels permuted).", png(fig))


def source_curve_frame(table: pd.DataFrame) -> pd.DataFrame:
    """Backbones × target sizes: 'gain [CI]' in pp."""
    table = table.assign(cell=[ci_cell(r.gain, r.gain_low, r.gain_high, bounds=(-1.0, 1.0)) for r in table.itertuples()],
                         label=[f"{r.backbone} ({r.source_images:,} images{', permuted' if r.control else ''})"
                                for r in table.itertuples()])
    order = list(dict.fromkeys(table.sort_values(["control", "source_images"])["label"]))
    wide = table.pivot(index="label", columns="per_class", values="cell").reindex(order)
    wide.columns = [f"gain at {n}/class (pp)" for n in wide.columns]
    return wide.reset_index().rename(columns={"label": "backbone (source)"})


def source_curve_part(doc: Document, evaluation_dir: Path) -> None:
    path = Path(evaluation_dir) / SOURCE_CURVE_FILE
    table = pd.read_csv(path) if path.exists() else pd.DataFrame()
    if table.empty:
        return
    doc.heading("How much source data? The source-size curve and its control")
    doc.para("Each point is a backbone pre-trained with the same recipe on the first n source images (class-balanced; "
             "a smaller source trains more epochs, to at least pretrain.min_steps steps), then fine-tuned on the same "
             "target pools and seeds. The control learns from every source image with its pixels permuted by one "
             "fixed permutation: as much data, no spatial structure.")
    doc.figure(source_curve_figure(table))
    doc.table(source_curve_frame(table))
