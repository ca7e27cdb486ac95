"""The report's matplotlib figures, each rendered once to PNG bytes (embedded in the HTML, written beside the
Markdown)."""
from __future__ import annotations

import io
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # no display: the report is built by a pipeline stage
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from transferlab.params.base import STRATEGIES, base_strategy

# One colour per strategy, in the schema's order (a new strategy gets the next colour of the cycle); a runs-table
# label such as "wise_ft@0.5" takes its strategy's colour.
STRATEGY_COLORS = dict(zip(STRATEGIES, ["#7f7f7f", "#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                                        "#bcbd22", "#17becf", "#ff7f0e"]))
# Colours of the two arms each of the multi-task, distillation and few-shot experiments compares.
ARM_COLORS = {"shared": "#d62728", "separate": "#1f77b4", "masked": "#d62728", "as_negative": "#7f7f7f",
              "distilled": "#d62728", "hard": "#1f77b4", "protonet": "#d62728", "pretrained": "#1f77b4"}


@dataclass
class Figure:
    name: str
    caption: str
    png: bytes


def png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


VARIANT_MARKERS = ("o", "s", "^", "D", "v", "P")  # the variants of one strategy share its colour
VARIANT_HATCHES = ("", "//", "..", "xx", "\\\\", "++")  # ... and, as bars, differ by hatching
# Other backbones than the main one (the source-size curve's, the control, imported ones): each its own colour and
# marker, drawn dashed, so that they differ from each other and from the main backbone's strategies.
BACKBONE_COLORS = ("#000000", "#e6ab02", "#a6761d", "#1b9e77", "#666666", "#7570b3", "#e7298a", "#66a61e")
BACKBONE_MARKERS = ("X", "*", "p", "h", "<", ">", "8", "d")


def backbone_style(backbone: str, others: list[str]) -> tuple[str, str]:
    """(colour, marker) of a non-main backbone, by its place among `others` (appended to when new)."""
    if backbone not in others:
        others.append(backbone)
    i = others.index(backbone)
    return BACKBONE_COLORS[i % len(BACKBONE_COLORS)], BACKBONE_MARKERS[i % len(BACKBONE_MARKERS)]


def learning_curve_figure(curves: pd.DataFrame, main: str, metric: str = "accuracy",
                          xlabel: str = "labelled target examples per class (log scale)", name: str = "",
                          ylabel: str = "", caption: str = "") -> Figure:
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    variants: dict[str, list[str]] = {}
    others: list[str] = []
    for (backbone, strategy), g in curves.groupby(["backbone", "strategy"], sort=False):
        g = g.sort_values("per_class")
        if backbone == main:
            color, style, label = STRATEGY_COLORS.get(base_strategy(strategy)), "-", strategy
            seen = variants.setdefault(base_strategy(strategy), [])
            if strategy not in seen:
                seen.append(strategy)
            marker = VARIANT_MARKERS[seen.index(strategy) % len(VARIANT_MARKERS)]
        else:
            (color, marker), style, label = backbone_style(backbone, others), "--", f"{strategy} (backbone: {backbone})"
        ax.plot(g["per_class"], g[metric] * 100, style, marker=marker, color=color, label=label)
        ax.fill_between(g["per_class"], g[f"{metric}_low"] * 100, g[f"{metric}_high"] * 100, color=color, alpha=0.15)
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel or f"test {metric.replace('_', ' ')} (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return Figure(name or f"learning_curve_{metric}", caption or f"Test {metric.replace('_', ' ')} vs "
                  f"{xlabel.split(' (')[0]}; mean over seeds with 95% CI band.", png(fig))


def det_figure(det: pd.DataFrame, positives: int) -> Figure:
    fig, ax = plt.subplots(figsize=(6, 4.5))
    others: list[str] = []
    for strategy, g in det.groupby("strategy", sort=False):
        g = g[(g["far"] > 0) & (g["frr"] > 0)]
        # "head (silero-vad)": another backbone's run, in its own colour and dashed
        backbone = strategy.partition(" (")[2].rstrip(")")
        color, style = (backbone_style(backbone, others)[0], "--") if backbone else \
            (STRATEGY_COLORS.get(base_strategy(strategy)), "-")
        ax.plot(g["far"] * 100, g["frr"] * 100, style, color=color, label=strategy)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("false-accept rate (%)")
    ax.set_ylabel("false-reject rate (%)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return Figure("det_curve", f"DET curves of the wake-word detectors fine-tuned on {positives} positives "
                  "(seed 0); lower-left is better.", png(fig))


def stream_det_figure(det: pd.DataFrame, target: float, fewest: float | None = None) -> Figure:
    """DET curves on continuous audio, one panel per positives count: FRR against false accepts per hour (log),
    mean over seeds, each arm its own colour (other backbones dashed), the target rate marked and, shaded, the
    rates below `fewest` (one false accept in the test audio), which read at zero false accepts."""
    counts = sorted(det["per_class"].unique())
    fig, axes = plt.subplots(1, len(counts), figsize=(4.2 * len(counts), 4), sharey=True, squeeze=False)
    others: list[str] = []
    for ax, n in zip(axes[0], counts):
        for strategy, g in det[det["per_class"] == n].groupby("strategy", sort=False):
            backbone = strategy.partition(" (")[2].rstrip(")")
            color, style = (backbone_style(backbone, others)[0], "--") if backbone else \
                (STRATEGY_COLORS.get(base_strategy(strategy)), "-")
            g = g.sort_values("fa_per_hour")
            ax.step(g["fa_per_hour"], g["frr"] * 100, style, where="post", color=color, label=strategy)
        ax.axvline(target, color="black", ls=":", lw=1)
        if fewest:
            ax.axvspan(det["fa_per_hour"].min(), fewest, color="grey", alpha=0.12, lw=0)
        ax.set_xscale("log")
        ax.set_title(f"{n} positives", fontsize=10)
        ax.set_xlabel("false accepts per hour (log)")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("false-reject rate (%)")
    axes[0][-1].legend(fontsize=7)
    return Figure("det_stream", "DET curves on continuous audio: false rejects of the wake words embedded in the test "
                  f"stream against false accepts per hour of the test streams, mean over seeds; the dotted line is "
                  f"the target ({target:g} per hour)"
                  + (f"; shaded: under one false accept in the test audio ({fewest:.2f} per hour), where every "
                     "rate reads at zero false accepts" if fewest else "") + ". Lower-left is better.", png(fig))


def crossover_figure(curve: pd.DataFrame, track: str, crossover: float | None) -> Figure:
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for (branch, kind), g in curve[curve["track"] == track].groupby(["branch", "kind"]):
        g = g.sort_values("size")
        color = "#1f77b4" if kind == "pipeline" else "#d62728"
        ax.plot(g["size"], g["accuracy"] * 100, marker="o", color=color, label=f"{kind} ({branch})")
        ax.fill_between(g["size"], g["accuracy_low"] * 100, g["accuracy_high"] * 100, color=color, alpha=0.15)
    if crossover is not None:
        ax.axvline(crossover, color="black", ls=":", label=f"crossover ≈ {crossover:,.0f}")
    ax.set_xscale("log")
    ax.set_xlabel("training examples (log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return Figure(f"crossover_{track}", f"{track}: hand-built pipeline vs end-to-end network over training-set "
                  "size; mean over seeds with 95% CI band.", png(fig))


def gain_figure(gains: pd.DataFrame, main: str) -> Figure:
    fig, ax = plt.subplots(figsize=(7.5, 4))
    g_all = gains[gains["backbone"] == main]
    strategies = list(dict.fromkeys(g_all["strategy"]))
    sizes = sorted(g_all["per_class"].unique())
    width = 0.8 / max(1, len(strategies))
    variants: dict[str, list[str]] = {}
    for i, s in enumerate(strategies):
        g = g_all[g_all["strategy"] == s].set_index("per_class").reindex(sizes)
        x = np.arange(len(sizes)) + i * width
        err = np.vstack([(g["gain"] - g["gain_low"]) * 100, (g["gain_high"] - g["gain"]) * 100])
        seen = variants.setdefault(base_strategy(s), [])
        seen.append(s)
        ax.bar(x, g["gain"] * 100, width, yerr=err, capsize=2, color=STRATEGY_COLORS.get(base_strategy(s)), label=s,
               hatch=VARIANT_HATCHES[(len(seen) - 1) % len(VARIANT_HATCHES)], edgecolor="white")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(np.arange(len(sizes)) + width * (len(strategies) - 1) / 2, [str(n) for n in sizes])
    ax.set_xlabel("labelled target examples per class")
    ax.set_ylabel("accuracy gain vs scratch (pp)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return Figure("transfer_gain", "Transfer gain over training from scratch (paired by seed), 95% CI.", png(fig))


def confusion_figure(pairs: pd.DataFrame, classes: list[str]) -> Figure:
    idx = {c: i for i, c in enumerate(classes)}
    m = np.zeros((len(classes), len(classes)), int)
    for a, p in zip(pairs["actual"].astype(str), pairs["predicted"].astype(str)):
        m[idx[a], idx[p]] += 1
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.imshow(m, cmap="Blues")
    for i in range(len(classes)):
        for j in range(len(classes)):
            if m[i, j]:
                ax.text(j, i, m[i, j], ha="center", va="center", fontsize=7,
                        color="white" if m[i, j] > m.max() / 2 else "black")
    ax.set_xticks(range(len(classes)), classes)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    run = pairs["run_id"].iloc[0] if len(pairs) else "?"
    return Figure("confusion", f"Confusion matrix of run {run}.", png(fig))


def errorbar(ax, x, g: pd.DataFrame, metric: str, label: str, scale: float = 100.0) -> None:
    """One arm's metric with its 95% CI as error bars."""
    ax.errorbar(x, g[metric] * scale, yerr=[(g[metric] - g[f"{metric}_low"]) * scale,
                                             (g[f"{metric}_high"] - g[metric]) * scale],
                marker="o", capsize=3, color=ARM_COLORS.get(label), label=label)
