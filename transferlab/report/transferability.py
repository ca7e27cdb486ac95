"""Report section: transferability scores of the candidate backbones against their measured fine-tuned accuracy
(Kendall's τ with its bootstrap CI), the scores at each layer cut, and their cost — reads the transferability
stage's tables and the transferability_check stage's tables and claims.json."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from transferlab.analysis.claims import CLAIMS_FILE, read_claims
from transferlab.experiments.transferability.rankcheck import unjudged_sizes
from transferlab.report.document import Document
from transferlab.report.figures import Figure, backbone_style, png

NAMES = {"logme": "LogME", "leep": "LEEP", "nce": "NCE", "h_score": "H-score"}


def _tau_cell(r) -> str:
    if r.backbones < 3:
        return f"— ({r.backbones} backbones)"
    if math.isnan(r.tau):
        return "— (ties)"
    return f"{r.tau:+.2f}" + ("" if math.isnan(r.low) else f" [{r.low:+.2f}, {r.high:+.2f}]")


def tau_frame(taus: pd.DataFrame) -> pd.DataFrame:
    """Scores × pool sizes: 'τ [CI]'."""
    taus = taus.assign(cell=[_tau_cell(r) for r in taus.itertuples(index=False)])
    table = taus.pivot(index="score", columns="per_class", values="cell").reindex(list(dict.fromkeys(taus["score"])))
    table.columns = [f"n={c}/class" for c in table.columns]
    return table.rename(index=NAMES).reset_index()


def scatter_figure(joined: pd.DataFrame, taus: pd.DataFrame, names: list[str], strategy: str) -> Figure:
    """A panel per score (rows) and pool size (columns): each backbone's mean score against its mean accuracy,
    bars spanning its seeds; τ and its CI in the title."""
    sizes = sorted(joined["per_class"].unique())
    fig, axes = plt.subplots(len(names), len(sizes), figsize=(3.6 * len(sizes), 3.0 * len(names)), squeeze=False)
    # A colour and marker per backbone and one legend for all panels: names written beside the points overlapped.
    backbones: list[str] = []
    for i, name in enumerate(names):
        for j, n in enumerate(sizes):
            ax = axes[i][j]
            g = joined[joined["per_class"] == n].groupby("backbone")
            mean, lo, hi = g[[name, "accuracy"]].mean(), g[[name, "accuracy"]].min(), g[[name, "accuracy"]].max()
            mean = mean.dropna()
            for b, r in mean.iterrows():
                color, marker = backbone_style(str(b), backbones)
                ax.errorbar([r[name]], [r["accuracy"] * 100],
                            xerr=[[r[name] - lo.loc[b, name]], [hi.loc[b, name] - r[name]]],
                            yerr=[[(r["accuracy"] - lo.loc[b, "accuracy"]) * 100],
                                  [(hi.loc[b, "accuracy"] - r["accuracy"]) * 100]],
                            fmt=marker, ms=6, capsize=2, color=color, label=str(b))
            t = taus[(taus["per_class"] == n) & (taus["score"] == name)]
            ax.set_title(f"n={n}/class: τ {_tau_cell(t.iloc[0])}" if len(t) else f"n={n}/class", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
            if j == 0:
                ax.set_ylabel(f"{strategy} accuracy (%)", fontsize=8)
            ax.set_xlabel(NAMES.get(name, name), fontsize=8)
    handles = {h.get_label(): h for ax in axes.flat for h in ax.get_legend_handles_labels()[0]}
    fig.legend([handles[b] for b in backbones if b in handles], [b for b in backbones if b in handles],
               loc="upper center", ncol=min(len(backbones), 6), fontsize=8, bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return Figure("transferability_vs_accuracy", "Each backbone's transferability score (mean over the pool draws) "
                  f"against the test accuracy of {strategy} fine-tuning on the same draws (mean; bars span the "
                  "seeds); τ: Kendall's rank correlation with its bootstrap CI over seeds.", png(fig))


def layer_cut_frame(scores: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """The main backbone's scores at each body block's output and at the pooled pre-logits features (body),
    mean over draws, per pool size."""
    main = scores["backbone"].iloc[0]
    sel = scores[scores["backbone"] == main]
    cols = [n for n in names if sel[n].notna().any()]
    table = sel.groupby(["cut", "per_class"], sort=False)[cols].mean().reset_index()
    table = table.assign(**{c: table[c].round(3) for c in cols}).rename(columns={**NAMES, "per_class": "n/class"})
    return table


def layer_cut_figure(scores: pd.DataFrame, score: str) -> Figure:
    main = scores["backbone"].iloc[0]
    sel = scores[(scores["backbone"] == main) & (scores["cut"] != "body")]
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for n, g in sel.groupby("per_class"):
        m = g.groupby("cut", sort=False)[score].mean()
        ax.plot(range(1, len(m) + 1), m.to_numpy(), "o-", label=f"n={n}/class")
    ax.set_xticks(range(1, sel["cut"].nunique() + 1))
    ax.set_xlabel(f"body block of {main} (features after it, pooled)")
    ax.set_ylabel(NAMES.get(score, score))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return Figure(f"layer_cuts_{score}", f"{NAMES.get(score, score)} of {main}'s features after each body block, "
                  "mean over pool draws.", png(fig))


def transferability_section(doc: Document, scores_dir: Path, check_dir: Path, strategy: str) -> None:
    scores = pd.read_csv(scores_dir / "scores.csv")
    timing = pd.read_csv(scores_dir / "timing.csv")
    joined = pd.read_csv(check_dir / "joined.csv")
    taus = pd.read_csv(check_dir / "tau.csv")
    names = list(dict.fromkeys(taus["score"]))
    doc.section("transferability", "Transferability scores vs the fine-tuning sweep",
                read_claims(check_dir / CLAIMS_FILE))
    doc.para("Before any fine-tuning, each candidate backbone is scored from its frozen features of the target "
             "training pools (the same sizes and draws fine-tuning uses): LogME (You et al. 2021), LEEP (Nguyen et "
             "al. 2020, from the backbone's own source head), NCE (Tran et al. 2019, from the head's argmax) and "
             "H-score (Bao et al. 2019). The random-init candidate is the main architecture with random weights; "
             "its head is untrained, so LEEP and NCE read a source task it never learned, and its measured "
             "accuracy is the main backbone's scratch run (full fine-tuning of a random network). A score is "
             "useful when it orders the backbones as their fine-tuned accuracy does: Kendall's τ = 1 is the "
             "same order, 0 none, −1 the reverse.")
    doc.heading("Kendall τ [bootstrap CI over seeds], score vs fine-tuned accuracy")
    doc.table(tau_frame(taus))
    unjudged = unjudged_sizes(taus)
    if unjudged:
        doc.para(f"Not judged by design: at n={', '.join(map(str, unjudged))}/class this profile fine-tunes fewer "
                 "than 3 backbones (the others run at finetune.curve_pool_sizes only), and a rank correlation needs "
                 "at least 3, so those pool sizes have no claim row.")
    if not joined.empty:
        doc.figure(scatter_figure(joined, taus, names, strategy))
    cuts = scores[scores["cut"] != "body"]
    if not cuts.empty:
        doc.heading("Layer cuts of the main backbone")
        doc.para("Scores of the main backbone's features after each body block (pooled spatially); 'body' is the "
                 "pooled pre-logits feature a new head is trained on. LEEP and NCE need a source head, which only "
                 "the last layer has, so they are left out here.")
        doc.table(layer_cut_frame(scores, names))
        for score in ("logme", "h_score"):
            if score in names:
                doc.figure(layer_cut_figure(scores, score))
    doc.heading("Cost")
    doc.table(timing.rename(columns={"seconds": "wall s (load + features + scores)",
                                     "extract_seconds": "load + features s", "score_seconds": "scores s",
                                     "layer_cut_seconds": "layer-cut scores s"}))
