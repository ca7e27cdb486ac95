"""Report section: learning-curve extrapolation — a power law fitted on the smaller pools predicts the largest one,
shown against what was measured there; and the fit on every pool with its asymptote. Reads the evaluation stage's
extrapolation.csv, power_law.csv, curves.csv and its claims.json (the held-out claim only)."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from transferlab.analysis.claims import CLAIMS_FILE, read_claims
from transferlab.analysis.extrapolate import HOLDOUT_KEY, checked_rows
from transferlab.params.base import base_strategy
from transferlab.report.document import NO_VALUE, Document, ci_cell
from transferlab.report.figures import STRATEGY_COLORS, Figure, png

EXTRAPOLATION_CLAIMS = (HOLDOUT_KEY,)  # the evaluation stage's claims shown here rather than in the vision section


def _pc(x) -> str:
    return NO_VALUE if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x * 100:.1f}"


def _note(x) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else str(x)


def holdout_frame(table: pd.DataFrame) -> pd.DataFrame:
    """Per strategy: the held-out size, the sizes fitted, predicted [interval] vs measured accuracy (%), the miss
    (measured − predicted, pp) and whether the measured mean lies inside the interval; a note when unchecked."""
    inside = {i: ("yes" if v else "no") for i, v in checked_rows(table)["inside"].items()}
    return pd.DataFrame({
        "strategy": table["strategy"],
        "held out (n/class)": [f"{n:g}" if pd.notna(n) else NO_VALUE for n in table["n"]],
        "fitted on": [_note(f) or NO_VALUE for f in table["fitted_on"]],
        "predicted % [interval]": [ci_cell(p, lo, hi) for p, lo, hi in zip(table["predicted"], table["low"],
                                                                             table["high"])],
        "measured %": [_pc(m) for m in table["measured"]],
        "measured − predicted (pp)": [f"{m:+.1f}" if pd.notna(m) else NO_VALUE for m in table["miss_pp"]],
        "inside": [inside.get(i, NO_VALUE) for i in table.index],
        # the training budget of the largest fitted size and of the held-out one (older tables lack it)
        "steps (fitted → held out)": [f"{f:g} → {h:g}" if pd.notna(f) and pd.notna(h) else NO_VALUE
                                      for f, h in table.reindex(columns=["fit_steps", "steps"]).itertuples(index=False)],
        "note": [_note(n) for n in table["note"]]})


def power_law_frame(table: pd.DataFrame) -> pd.DataFrame:
    """Per strategy: err = a·n^(−b) + c on every pool size, the exponent and asymptotic accuracy 1 − c with their
    bootstrap intervals, and the fit's RMS residual."""
    def ci(m, lo, hi, scale=1.0, digits=2):
        return NO_VALUE if pd.isna(m) else f"{m * scale:.{digits}f} [{lo * scale:.{digits}f}, {hi * scale:.{digits}f}]"

    return pd.DataFrame({
        "strategy": table["strategy"], "fitted on (n/class)": [_note(f) or NO_VALUE for f in table["fitted_on"]],
        "a": [f"{a:.3g}" if pd.notna(a) else NO_VALUE for a in table["a"]],
        "b [interval]": [ci(*v) for v in zip(table["b"], table["b_low"], table["b_high"])],
        "c": [f"{c:.3g}" if pd.notna(c) else NO_VALUE for c in table["c"]],
        "asymptotic accuracy % [interval]": [ci(*v, scale=100, digits=1) for v in
                                             zip(table["asymptote"], table["asymptote_low"], table["asymptote_high"])],
        "RMS residual (pp)": [f"{r:.2f}" if pd.notna(r) else NO_VALUE for r in table["rmse_pp"]],
        "note": [_note(n) for n in table["note"]]})


def holdout_figure(checked: pd.DataFrame, curves: pd.DataFrame) -> Figure:
    """A panel per checked strategy: measured mean accuracy with its CI at each pool size, the power law fitted on
    the smaller pools (solid) extended to the held-out one (dashed), and there the prediction with its interval
    beside the measured mean."""
    cols = min(4, len(checked))
    rows = math.ceil(len(checked) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.9 * rows), squeeze=False)
    for ax, r in zip(axes.flat, checked.itertuples()):
        color = STRATEGY_COLORS.get(base_strategy(r.strategy), "#1f77b4")
        g = curves[(curves["backbone"] == r.backbone) & (curves["strategy"] == r.strategy)].sort_values("per_class")
        fitted, held = g[g["per_class"] < r.n], g[g["per_class"] == r.n]
        for part, marker, face in ((fitted, "o", color), (held, "s", "white")):
            ax.errorbar(part["per_class"], part["accuracy"] * 100, fmt=marker, ms=5, capsize=2, color=color,
                        mfc=face, yerr=[(part["accuracy"] - part["accuracy_low"]) * 100,
                                        (part["accuracy_high"] - part["accuracy"]) * 100])
        n_fit = float(fitted["per_class"].max()) if not fitted.empty else r.n / 2
        lo_n = float(g["per_class"].min()) if not g.empty else 1.0

        def acc(n):
            return 100 * (1 - (r.a * n ** (-r.b) + r.c))

        inner, outer = np.geomspace(lo_n, n_fit, 60), np.geomspace(n_fit, r.n, 30)
        ax.plot(inner, acc(inner), "-", color="black", lw=1)
        ax.plot(outer, acc(outer), "--", color="black", lw=1)
        # The prediction sits just left of the measured point so the two intervals do not hide each other.
        ax.errorbar([r.n * 0.8], [r.predicted * 100], fmt="D", ms=5, capsize=3, color="black",
                    yerr=[[(r.predicted - r.low) * 100], [(r.high - r.predicted) * 100]])
        ax.set_xscale("log")
        ax.set_title(f"{r.strategy}: {'inside' if r.inside else 'outside'} ({r.miss_pp:+.1f} pp)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(checked):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("test accuracy (%)", fontsize=8)
    for ax in axes[-1, :]:
        ax.set_xlabel("labelled examples per class (log)", fontsize=8)
    fig.tight_layout()
    level = f"{float(checked['confidence'].iloc[0]):.0%}"
    return Figure("extrapolation_holdout", "Per strategy: measured mean test accuracy (circles, the fitted pool "
                  "sizes; open square, the held-out largest one; bars: 95% CI over seeds), the power law fitted on "
                  "the smaller pools only (solid) and its extension (dashed), and its prediction at the largest "
                  f"pool with the {level} bootstrap interval (black diamond, drawn just left of that size).",
                  png(fig))


def extrapolation_section(doc: Document, evaluation_dir: Path) -> None:
    claims_path = evaluation_dir / CLAIMS_FILE
    claims = [c for c in read_claims(claims_path) if c.key in EXTRAPOLATION_CLAIMS] if claims_path.exists() else []
    doc.section("extrapolation", "Learning-curve extrapolation: how many labels?", claims)
    holdout_path, power_path = evaluation_dir / "extrapolation.csv", evaluation_dir / "power_law.csv"
    if not holdout_path.exists():
        doc.para("No extrapolation tables in the evaluation results (extrapolation.csv): re-run the evaluate stage.")
        return
    holdout = pd.read_csv(holdout_path)
    doc.para("Each strategy's test error is fitted with err(n) = a·n^(−b) + c (Hestness et al. 2017; Figueroa et "
             "al. 2012), n the labelled examples per class, with intervals from a bootstrap over seeds. The method "
             "is checked here before anyone trusts it: the fit on every pool size but the largest predicts the "
             "largest, and the measured mean there must lie inside the prediction interval (which includes the "
             "noise of a mean over the held-out seeds). Even a calibrated 95% interval misses one time in 20, "
             "and one bootstrapped over few seeds per size is narrower than nominal, so a miss or two among many "
             "strategies is expected; many misses, or large ones, mean the curve has left its power law. "
             "`transferlab advise --target-accuracy X` uses the same fit on every size to say how many labels per "
             "class reach X.")
    checked = checked_rows(holdout)
    if not checked.empty:
        evaluation_curves = evaluation_dir / "curves.csv"
        curves = pd.read_csv(evaluation_curves) if evaluation_curves.exists() else pd.DataFrame(
            columns=["backbone", "strategy", "per_class", "accuracy", "accuracy_low", "accuracy_high"])
        doc.figure(holdout_figure(checked, curves))
    doc.heading("Held-out check: predicted vs measured accuracy at the largest pool")
    doc.table(holdout_frame(holdout))
    if power_path.exists():
        doc.heading("Power law on every pool size")
        doc.table(power_law_frame(pd.read_csv(power_path)))
