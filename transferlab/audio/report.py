"""Report sections for the audio track (wake-word transfer) and the pipeline-vs-end-to-end comparison."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..branches.compare import crossover
from ..claims import INCONCLUSIVE, Claim, _best, _diff, judge, pct, read_claims
from ..detection import far_key
from ..report import Document, claims_frame, crossover_figure, det_figure, learning_curve_figure
from ..stats import Estimate
from .params import AudioEvaluateParams


def audio_claims(runs: pd.DataFrame, key: str, confidence: float, min_effect: float) -> list[Claim]:
    """The course's transfer-learning claims on the wake-word task, judged on FRR at the first FAR target (lower is
    better, so each difference is taken as worse − better)."""
    main = str(runs["backbone"].iloc[0])
    have = set(runs["strategy"])
    sizes = sorted(runs["per_class"].unique())
    small, large = int(sizes[0]), int(sizes[-1])
    transfer = [s for s in ("head", "last_k", "full", "discriminative") if s in have]
    claims = []
    if "scratch" not in have or not transfer:
        return claims

    def add(k, statement, worse, better, n):
        d = _diff(runs, (main, worse), (main, better), n, confidence, metric=key)
        claims.append(Claim(k, statement, judge(d, min_effect) if d else "inconclusive",
                            f"{n} positives, {key} of {worse} − {better}: " + (pct(d) if d else "no runs")))

    best_small = _best(runs, main, transfer, small, key, lower_is_better=True)
    add("audio_transfer_helps_few_positives", "Wake word: pre-training on spoken words cuts false rejects with few "
        "positives", "scratch", best_small, small)
    best_large = _best(runs, main, transfer, large, key, lower_is_better=True)
    add("audio_transfer_helps_more_positives", f"Wake word: transfer still helps at {large} positives",
        "scratch", best_large, large)
    if "head" in have:
        add("audio_head_only_enough", f"Wake word: frozen speech features + a new head beat scratch at {large} "
            "positives", "scratch", "head", large)
    deep = [s for s in ("full", "discriminative") if s in have]
    if "head" in have and deep:
        best_deep = _best(runs, main, deep, large, key, lower_is_better=True)
        add("audio_retrain_all_when_more", "Wake word: with more positives, retraining all layers beats the "
            "frozen body", "head", best_deep, large)
    return claims


def reference_claims(curves: pd.DataFrame, key: str, reference: dict[int, float], strategy: str) -> list[Claim]:
    """Does `strategy` reach a reference FRR (e.g. a calibration run's) at each positives count? Judged on the
    learning curves' 95 % CI over seeds: holds when all of it is below the reference, does not hold
    when all of it is above."""
    main = str(curves["backbone"].iloc[0])
    claims = []
    for n, target in sorted(reference.items()):
        row = curves[(curves["backbone"] == main) & (curves["strategy"] == strategy) & (curves["per_class"] == n)]
        seeds = int(row["seeds"].iloc[0]) if len(row) else 0
        if seeds < 2:
            verdict, evidence = INCONCLUSIVE, f"{seeds} runs of {strategy} at {n} positives"
        else:
            mean, low, high = (float(row[c].iloc[0]) for c in (key, f"{key}_low", f"{key}_high"))
            # How far below the reference the runs are: the same verdict rule as every other claim.
            verdict = judge(Estimate(target - mean, target - high, target - low, seeds), 0.0)
            evidence = (f"{strategy}, {n} positives: {key} {mean:.3f} (95% CI {low:.3f} to {high:.3f}, {seeds} seeds) "
                        f"vs reference {target:.3f}")
        claims.append(Claim(f"audio_reference_n{n}", f"Wake word: {strategy} fine-tuning reaches the reference "
                            f"false-reject rate at {n} positives", verdict, evidence))
    return claims


def audio_section(doc: Document, eval_dir: Path, cfg: AudioEvaluateParams, card: dict, validation: dict,
                  wake_word: str, confidence: float, min_effect: float) -> list[Claim]:
    runs = pd.read_csv(eval_dir / "runs.csv")
    curves = pd.read_csv(eval_dir / "curves.csv")
    det = pd.read_csv(eval_dir / "det.csv")
    key = far_key(cfg.far_targets[0])
    claims = audio_claims(runs, key, confidence, min_effect) + reference_claims(
        curves, key, cfg.reference_frr, cfg.reference_strategy)
    main = str(runs["backbone"].iloc[0])
    doc.heading("Audio: spoken words (A) → wake word (B)")
    doc.para(f"Source A: {card['metrics'].get('train_images', '?')} synthesised clips of {len(card['classes'])} "
             f"words; pre-training accuracy on held-out voices {card['metrics'].get('val_accuracy', float('nan')) * 100:.1f}%. "
             f"Target B: detect '{wake_word}' among other words, near misses and noise, "
             f"spoken by voices in neither training set. Validation: "
             + ("all Great Expectations suites passed" if validation.get("success") else "FAILED") + ".")
    doc.table(claims_frame(claims))
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
            row[c] = f"{m:.1f} [{lo:.1f}, {hi:.1f}]" if c == "fa_per_hour" else f"{m * 100:.1f} [{lo * 100:.1f}, {hi * 100:.1f}]"
        rows.append(row)
    doc.table(pd.DataFrame(rows).sort_values(["positives", "strategy"]))
    doc.para(f"Rates in %, mean [95% CI] over seeds; fa_per_hour counts false accepts per hour of negative audio at "
             f"the operating threshold P(wake word) ≥ {cfg.threshold}, where frr_at_threshold is also measured.")
    by_kind = eval_dir / "by_negative_kind.csv"
    if by_kind.exists():
        _negative_kind_table(doc, pd.read_csv(by_kind), main, cfg.far_targets[0])
    return claims


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


def compare_section(doc: Document, compare_dir: Path) -> list[Claim]:
    curve = pd.read_csv(compare_dir / "curves.csv")
    diff = pd.read_csv(compare_dir / "differences.csv")
    claims = read_claims(compare_dir / "claims.json")
    stage1 = pd.read_json(compare_dir / "stage1.json", typ="series").to_dict()
    doc.heading("Hand-built pipeline vs end-to-end network")
    doc.para("Both branches of a track train on the same nested subsets (same seed, same examples) and are scored on "
             "the same test set. Audio: MFCC+Δ+ΔΔ pooled over the detected speech region and its parts → logistic "
             "regression, vs the M5 1-D CNN on raw 16 kHz audio (test: held-out voices). Vision: a hand-designed "
             "localiser (connected components) crops the digit from a cluttered canvas → CNN, vs one CNN on the "
             "whole canvas.")
    loc = stage1.get("vision-pipeline") or {}
    if loc:
        doc.para(f"The localiser found the digit on {loc.get('localised_test', float('nan')) * 100:.1f}% of test "
                 "canvases: the pipeline's ceiling is set by its hand-designed stage.")
    doc.table(claims_frame(claims))
    for track in sorted(curve["track"].unique()):
        doc.figure(crossover_figure(curve, track, crossover(diff[diff["track"] == track])))
    table = curve.assign(cell=[f"{m * 100:.1f} [{lo * 100:.1f}, {hi * 100:.1f}]" for m, lo, hi in
                               zip(curve["accuracy"], curve["accuracy_low"], curve["accuracy_high"])])
    doc.table(table.pivot(index="branch", columns="size", values="cell").fillna("").reset_index())
    return claims
