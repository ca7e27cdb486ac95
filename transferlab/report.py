"""The report: one self-contained HTML file (figures embedded) and a Markdown copy, from one document model."""
from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

STRATEGY_COLORS = {"scratch": "#7f7f7f", "head": "#1f77b4", "last_k": "#2ca02c", "full": "#d62728",
                   "discriminative": "#9467bd"}
VERDICT_MARK = {"holds": "✅ holds", "does not hold": "❌ does not hold", "inconclusive": "➖ inconclusive"}


@dataclass
class Figure:
    name: str
    caption: str
    png: bytes


@dataclass
class Document:
    title: str
    blocks: list = field(default_factory=list)  # ("h", text) | ("p", text) | ("table", DataFrame) | ("fig", Figure)

    def heading(self, text: str) -> None:
        self.blocks.append(("h", text))

    def para(self, text: str) -> None:
        self.blocks.append(("p", text))

    def table(self, frame: pd.DataFrame) -> None:
        self.blocks.append(("table", frame))

    def figure(self, fig: Figure) -> None:
        self.blocks.append(("fig", fig))

    def markdown(self, figure_dir: str) -> str:
        out = [f"# {self.title}", ""]
        for kind, value in self.blocks:
            if kind == "h":
                out += [f"## {value}", ""]
            elif kind == "p":
                out += [value, ""]
            elif kind == "table":
                cols = list(value.columns)
                out += ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
                out += ["| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |"
                        for row in value.itertuples(index=False)]
                out.append("")
            else:
                out += [f"![{value.caption}]({figure_dir}/{value.name}.png)", "", f"*{value.caption}*", ""]
        return "\n".join(out)

    def html(self) -> str:
        parts = [f"<h1>{html.escape(self.title)}</h1>"]
        for kind, value in self.blocks:
            if kind == "h":
                parts.append(f"<h2>{html.escape(value)}</h2>")
            elif kind == "p":
                parts.append(f"<p>{html.escape(value)}</p>")
            elif kind == "table":
                parts.append(value.to_html(index=False, escape=True, border=0, classes="tbl"))
            else:
                data = base64.b64encode(value.png).decode()
                parts.append(f'<figure><img alt="{html.escape(value.caption)}" src="data:image/png;base64,{data}">'
                             f"<figcaption>{html.escape(value.caption)}</figcaption></figure>")
        style = ("body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}"
                 "table.tbl{border-collapse:collapse;margin:1em 0;font-size:14px}"
                 "table.tbl td,table.tbl th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
                 "figure{margin:1em 0}img{max-width:100%}figcaption{color:#555;font-size:13px}")
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
                f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")

    def write(self, out_dir: Path) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        figs = out_dir / "figures"
        figs.mkdir(exist_ok=True)
        for kind, value in self.blocks:
            if kind == "fig":
                (figs / f"{value.name}.png").write_bytes(value.png)
        (out_dir / "report.md").write_text(self.markdown("figures"))
        (out_dir / "report.html").write_text(self.html())


def claims_frame(claims) -> pd.DataFrame:
    return pd.DataFrame([{"claim": c.statement, "verdict": VERDICT_MARK[c.verdict], "evidence": c.evidence}
                         for c in claims])


def ci_cell(mean: float, low: float, high: float, scale: float = 100.0) -> str:
    return f"{mean * scale:.1f} [{low * scale:.1f}, {high * scale:.1f}]"


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def learning_curve_figure(curves: pd.DataFrame, main: str, metric: str = "accuracy",
                          xlabel: str = "labelled target examples per class (log scale)", name: str = "",
                          ylabel: str = "") -> Figure:
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for (backbone, strategy), g in curves.groupby(["backbone", "strategy"], sort=False):
        g = g.sort_values("per_class")
        color = STRATEGY_COLORS.get(strategy, None)
        style = "-" if backbone == main else "--"
        label = strategy if backbone == main else f"{strategy} (backbone: {backbone} source)"
        ax.plot(g["per_class"], g[metric] * 100, style, marker="o", color=color, label=label)
        ax.fill_between(g["per_class"], g[f"{metric}_low"] * 100, g[f"{metric}_high"] * 100, color=color, alpha=0.15)
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel or f"test {metric.replace('_', ' ')} (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return Figure(name or f"learning_curve_{metric}", f"Test {metric.replace('_', ' ')} vs {xlabel.split(' (')[0]}; "
                  "mean over seeds with 95% CI band.", _png(fig))


def det_figure(det: pd.DataFrame, positives: int) -> Figure:
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for strategy, g in det.groupby("strategy", sort=False):
        g = g[(g["far"] > 0) & (g["frr"] > 0)]
        ax.plot(g["far"] * 100, g["frr"] * 100, color=STRATEGY_COLORS.get(strategy), label=strategy)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("false-accept rate (%)")
    ax.set_ylabel("false-reject rate (%)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return Figure("det_curve", f"DET curves of the wake-word detectors fine-tuned on {positives} positives "
                  "(seed 0); lower-left is better.", _png(fig))


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
                  "size; mean over seeds with 95% CI band.", _png(fig))


def gain_figure(gains: pd.DataFrame, main: str) -> Figure:
    fig, ax = plt.subplots(figsize=(7.5, 4))
    g_all = gains[gains["backbone"] == main]
    strategies = list(dict.fromkeys(g_all["strategy"]))
    sizes = sorted(g_all["per_class"].unique())
    width = 0.8 / max(1, len(strategies))
    for i, s in enumerate(strategies):
        g = g_all[g_all["strategy"] == s].set_index("per_class").reindex(sizes)
        x = np.arange(len(sizes)) + i * width
        err = np.vstack([(g["gain"] - g["gain_low"]) * 100, (g["gain_high"] - g["gain"]) * 100])
        ax.bar(x, g["gain"] * 100, width, yerr=err, capsize=2, color=STRATEGY_COLORS.get(s), label=s)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(np.arange(len(sizes)) + width * (len(strategies) - 1) / 2, [str(n) for n in sizes])
    ax.set_xlabel("labelled target examples per class")
    ax.set_ylabel("accuracy gain vs scratch (pp)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return Figure("transfer_gain", "Transfer gain over training from scratch (paired by seed), 95% CI.", _png(fig))


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
    return Figure("confusion", f"Confusion matrix of run {run}.", _png(fig))


def accuracy_table(curves: pd.DataFrame) -> pd.DataFrame:
    curves = curves.copy()
    curves["cell"] = [f"{m * 100:.1f} [{lo * 100:.1f}, {hi * 100:.1f}]"
                      for m, lo, hi in zip(curves["accuracy"], curves["accuracy_low"], curves["accuracy_high"])]
    curves["row"] = [s if b == curves["backbone"].iloc[0] else f"{s} ({b} source)"
                     for b, s in zip(curves["backbone"], curves["strategy"])]
    table = curves.pivot(index="row", columns="per_class", values="cell")
    table = table.reindex(list(dict.fromkeys(curves["row"])))
    table.columns = [f"n={c}/class" for c in table.columns]
    return table.reset_index().rename(columns={"row": "strategy"})
