"""Report section: wake-word transfer (pre-train on spoken words A, detect one word B) — reads the audio
evaluation stage's tables (the ceiling's multiples among them) and its claims.json."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from transferlab.analysis.claims import CLAIMS_FILE, read_claims
from transferlab.experiments.wakeword.metrics import far_key, rate_key
from transferlab.report.document import NO_VALUE, Document, ci_cell
from transferlab.report.figures import det_figure, learning_curve_figure, stream_det_figure
from transferlab.system.io import read_json
from transferlab.report.vision import backbone_table
from transferlab.report.training import stopping_para


def audio_section(doc: Document, eval_dir: Path, cfg, card: dict, validation: dict, wake_word: str,
                  imported: dict[str, dict] | None = None) -> None:
    """`cfg` is the audio evaluate params (far_targets, threshold, focus_positives): they name the columns;
    `imported` the cards of the imported audio backbones (silero-vad by default), by name."""
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
    if (eval_dir / "det_stream.csv").exists():
        _stream_section(doc, eval_dir, curves, runs, main)
    cols = ["auroc", *[far_key(f) for f in cfg.far_targets], "frr_at_threshold", "fa_per_hour"]
    rows = []
    for r in curves.itertuples(index=False):
        row = {"strategy": r.strategy if r.backbone == main else f"{r.strategy} (backbone: {r.backbone})",
               "positives": r.per_class}
        for c in cols:
            m, lo, hi = getattr(r, c), getattr(r, f"{c}_low"), getattr(r, f"{c}_high")
            scale = 1 if c == "fa_per_hour" else 100  # a count per hour, not a rate
            row[c] = ci_cell(m, lo, hi, scale, bounds=None if c == "fa_per_hour" else (0.0, 1.0))
        rows.append(row)
    doc.table(pd.DataFrame(rows).sort_values(["positives", "strategy"]))
    doc.para(f"Rates in %, mean [95% CI] over seeds; fa_per_hour counts false accepts per hour of negative audio at "
             f"the operating threshold P(wake word) ≥ {cfg.threshold}, where frr_at_threshold is also measured.")
    stopping = stopping_para(runs, ["backbone", "strategy", "per_class"])
    if stopping:
        doc.para(stopping)
    ceiling = eval_dir / "ceiling.csv"
    if ceiling.exists():
        _ceiling_table(doc, pd.read_csv(ceiling), cfg)
    by_kind = eval_dir / "by_negative_kind.csv"
    if by_kind.exists():
        _negative_kind_table(doc, pd.read_csv(by_kind), main, cfg.far_targets[0])
    if imported:
        doc.heading("Backbones")
        doc.para("Each imported backbone runs on the same pools and seeds as ours; the claims above compare it "
                 "with ours under the strategy it ran. Where its weights came from:")
        doc.table(backbone_table({"audio": card, **imported}))


def _stream_section(doc: Document, eval_dir: Path, curves: pd.DataFrame, runs: pd.DataFrame, main: str) -> None:
    """Every arm on continuous audio: the DET curve in false accepts per hour, FRR at each rate, and where the
    threshold chosen on the validation stream lands on the test streams."""
    info = read_json(eval_dir / "streams.json")
    hours, rates, target = info["hours"], info["rates"], info["target_fa_per_hour"]
    negative_h = hours["test-negative"]
    doc.heading("On continuous audio")
    scored = runs["stream_windows"].sum() * info["hop_s"] / 3600 if "stream_windows" in runs else 0
    rtf = (f" Scoring took {runs['stream_seconds'].sum() / max(scored * 3600, 1e-9):.4f} s per second of audio over "
           "all runs, a real-time factor (one thread per run; head-only and last_k runs share their frozen body's "
           "pass)." if scored else "")
    doc.para(f"Each run slid over {negative_h * 60:.0f} min of negative test stream and {hours['test-positive'] * 60:.0f}"
             f" min with the wake word said at known times (voices in no training set), one 1-s window per "
             f"{info['hop_s']:g} s, the score averaged over {info['smooth_frames']} windows, at most one detection per "
             f"{info['refractory_s']:g} s; a detection within 0.5 s of a word finds it, any other is a false accept. "
             f"FRR at a rate is the DET curve read there (the test streams' best threshold for it); 'deployed' is the "
             f"threshold chosen on {hours['validation-negative'] * 60:.0f} min of validation stream for {target:g} per "
             f"hour, as the model's card records it, measured on test." + rtf)
    fewest = 1 / (negative_h + hours["test-positive"])
    if min(rates) < fewest:
        doc.para(f"With {negative_h + hours['test-positive']:.2f} h of test audio one false accept is "
                 f"{fewest:.2f} per hour: every rate below that ({', '.join(f'{r:g}' for r in rates if r < fewest)}) "
                 "reads at zero false accepts, so those columns are the same measurement.")
    doc.figure(stream_det_figure(pd.read_csv(eval_dir / "det_stream.csv"), target, fewest))
    rows = []
    for r in curves.itertuples(index=False):
        row = {"strategy": r.strategy if r.backbone == main else f"{r.strategy} (backbone: {r.backbone})",
               "positives": r.per_class}
        for rate in rates:
            k = rate_key(rate)
            row[f"FRR at {rate:g}/h (%)"] = ci_cell(getattr(r, k), getattr(r, f"{k}_low"), getattr(r, f"{k}_high"))
        row["deployed FRR (%)"] = ci_cell(r.deployed_frr, r.deployed_frr_low, r.deployed_frr_high)
        row["deployed false accepts/h"] = ci_cell(r.deployed_fa_per_hour, r.deployed_fa_per_hour_low,
                                                   r.deployed_fa_per_hour_high, 1, bounds=(0.0, float("inf")))
        rows.append(row)
    doc.table(pd.DataFrame(rows).sort_values(["positives", "strategy"]))
    doc.para("Mean [95% CI] over seeds.")


def _ceiling_table(doc: Document, table: pd.DataFrame, cfg) -> None:
    """The ceiling detector, and each positives count's FRR as a multiple of the ceiling's."""
    if table.empty:
        return
    top = table.iloc[0]
    far = metric_label(str(top["metric"]) if "metric" in table else far_key(cfg.far_targets[0]), cfg)
    seeds = int(top.get("ceiling_seeds", 1) if not pd.isna(top.get("ceiling_seeds", 1)) else 1)
    runs, rate, spread = (("one run", f"{top['ceiling_frr'] * 100:.1f}%", "the ceiling's own run-to-run spread is not in it")
                          if seeds < 2 else
                          (f"{seeds} seeds", f"{top['ceiling_frr'] * 100:.1f}% [{top['ceiling_frr_low'] * 100:.1f}, "
                           f"{top['ceiling_frr_high'] * 100:.1f}] (mean [95% CI] over the seeds)",
                           "both the sweep's and the ceiling's spread are in it"))
    doc.para(f"Ceiling: the pre-trained backbone fully fine-tuned on {int(top['ceiling_positives']):,} positives and "
             f"{int(top['ceiling_negatives']):,} negatives ({top['ceiling_training_set']}; at most "
             f"{int(top['ceiling_steps'])} steps, {runs}), scored on the same test set: false-reject rate {rate} at "
             f"{far}, AUROC {top['ceiling_auroc'] * 100:.1f}%. Below, {top['strategy']} fine-tuning at each positives "
             f"count as a multiple of that rate, mean [95% CI; {spread}]; the claim is that it stays within "
             f"{cfg.ceiling_multiple:g}×.")
    rows = []
    for r in table.itertuples(index=False):
        if r.seeds == 0:
            multiple = "no runs"
        elif r.ceiling_frr <= 0:
            multiple = "none (the ceiling's FRR is 0)"
        else:
            multiple = f"{r.multiple:.2f}× [{r.multiple_low:.2f}, {r.multiple_high:.2f}]"
        frr = NO_VALUE if r.seeds == 0 else ci_cell(r.frr, r.frr_low, r.frr_high)
        rows.append({"positives": r.per_class, "strategy": r.strategy, f"FRR at {far} (%)": frr,
                     "multiple of the ceiling": multiple, "seeds": r.seeds})
    doc.table(pd.DataFrame(rows))


def metric_label(key: str, cfg) -> str:
    """'1% FAR' for a per-clip FRR column, '0.5 false accepts/h' for a stream one."""
    for far in cfg.far_targets:
        if key == far_key(far):
            return f"{far:.0%} FAR"
    rate = key.removeprefix("frr_at_").removesuffix("fa_h").replace("_", ".")
    return f"{rate} false accepts/h"


def _negative_kind_table(doc: Document, table: pd.DataFrame, main: str, far: float) -> None:
    """FRR against each kind of negative alone, and which kind is hardest."""
    table = table[table["backbone"] == main]
    if table.empty:
        return
    wide = table.assign(cell=[ci_cell(m, lo, hi) for m, lo, hi in zip(table["frr"], table["frr_low"], table["frr_high"])])
    doc.table(wide.pivot(index=["per_class", "strategy"], columns="negatives", values="cell").reset_index()
              .rename(columns={"per_class": "positives"}))
    hardest = table.groupby("negatives")["frr"].mean()
    doc.para(f"False-reject rate (%) at {far:.0%} FAR against one kind of negative at a time. Hardest: "
             f"'{hardest.idxmax()}' (mean FRR {hardest.max() * 100:.0f}% over strategies and pools); easiest: "
             f"'{hardest.idxmin()}' ({hardest.min() * 100:.0f}%).")
