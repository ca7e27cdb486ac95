"""The course's transfer-learning claims on the wake-word task, judged by the audio evaluation stage from its
runs, curves and the ceiling table (the report only reads the verdicts back)."""
from __future__ import annotations

import pandas as pd

from transferlab.analysis.claims import (
    INCONCLUSIVE,
    Claim,
    arm,
    backbone_claims,
    best_strategy,
    guard,
    judge,
    pct,
    strategy_diff,
)
from transferlab.experiments.wakeword.metrics import far_key
from transferlab.params.base import DEEP_STRATEGIES, TRANSFER_STRATEGIES, labels_in
from transferlab.analysis.stats import Estimate


def audio_claims(runs: pd.DataFrame, key: str, confidence: float, min_effect: float) -> list[Claim]:
    """Transfer claims judged on FRR at the first FAR target (lower is better, so each difference is taken as
    worse − better)."""
    main = str(runs["backbone"].iloc[0])
    have = set(runs["strategy"])
    sizes = sorted(runs["per_class"].unique())
    small, large = int(sizes[0]), int(sizes[-1])
    transfer = labels_in(TRANSFER_STRATEGIES, have)
    claims = []
    if "scratch" not in have or not transfer:
        return claims

    def add(k, statement, worse, better, n):
        d = strategy_diff(runs, (main, worse), (main, better), n, confidence, metric=key)
        claims.append(guard(Claim(k, statement, judge(d, min_effect) if d else "inconclusive",
                                  f"{n} positives, {key} of {worse} − {better}: " + (pct(d) if d else "no runs")),
                            runs, [arm(main, worse, n), arm(main, better, n)]))

    best_small = best_strategy(runs, main, transfer, small, key, lower_is_better=True)
    add("audio_transfer_helps_few_positives", "Wake word: pre-training on spoken words cuts false rejects with few "
        "positives", "scratch", best_small, small)
    best_large = best_strategy(runs, main, transfer, large, key, lower_is_better=True)
    add("audio_transfer_helps_more_positives", f"Wake word: transfer still helps at {large} positives",
        "scratch", best_large, large)
    if "head" in have:
        add("audio_head_only_enough", f"Wake word: frozen speech features + a new head beat scratch at {large} "
            "positives", "scratch", "head", large)
    deep = labels_in(DEEP_STRATEGIES, have)
    if "head" in have and deep:
        best_deep = best_strategy(runs, main, deep, large, key, lower_is_better=True)
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


def _ceiling_runs(r) -> str:
    """How the ceiling was measured, for a claim's evidence (older tables have no ceiling_seeds: one run)."""
    seeds = int(getattr(r, "ceiling_seeds", 1) or 1)
    if seeds < 2:
        return f"the ceiling is one run of {int(r.ceiling_steps)} steps"
    return (f"the ceiling is the mean of {seeds} runs, {r.ceiling_frr_low:.3f} to {r.ceiling_frr_high:.3f}, at most "
            f"{int(r.ceiling_steps)} steps; both spreads are in the CI")


def ceiling_claims(multiples: pd.DataFrame, key: str, within: float) -> list[Claim]:
    """Is the strategy's FRR within `within`× the ceiling's at each positives count? Judged on the multiple's
    95 % CI over seeds (from ceiling_multiples) by the same rule as the reference rows: holds when all of it is
    below `within`, does not hold when all of it is above."""
    claims = []
    for r in multiples.itertuples(index=False):
        n, strategy, seeds, top = int(r.per_class), r.strategy, int(r.seeds), float(r.ceiling_frr)
        ceiling = f"the {int(r.ceiling_positives):,}-positive ceiling"
        statement = f"Wake word: {strategy} fine-tuning at {n} positives is within {within:g}× of {ceiling}"
        if seeds < 2:
            verdict, evidence = INCONCLUSIVE, f"{seeds} runs of {strategy} at {n} positives"
        elif within * top >= 1:
            # No FRR exceeds 1, so against so weak a ceiling the claim could not fail: no evidence either way.
            verdict = INCONCLUSIVE
            evidence = (f"{strategy}, {n} positives: {key} {r.frr:.3f}; the ceiling's {key} is {top:.3f}, and no "
                        f"detector rejects more than all positives, so any is within {within:g}× of it")
        elif top <= 0:
            # A ratio to zero is undefined; and a zero measured on a finite test set is no proof of perfection.
            verdict = INCONCLUSIVE
            evidence = (f"{strategy}, {n} positives: {key} {r.frr:.3f} (95% CI {r.frr_low:.3f} to {r.frr_high:.3f}, "
                        f"{seeds} seeds); the ceiling rejects no test positive ({key} 0), so no multiple of it "
                        f"exists")
        else:
            verdict = judge(Estimate(within - r.multiple, within - r.multiple_high, within - r.multiple_low, seeds),
                            0.0)
            evidence = (f"{strategy}, {n} positives: {key} {r.frr:.3f} = {r.multiple:.2f}× the ceiling's {top:.3f} "
                        f"(95% CI {r.multiple_low:.2f}× to {r.multiple_high:.2f}×, {seeds} seeds; "
                        f"{_ceiling_runs(r)})")
        claims.append(Claim(f"audio_ceiling_n{n}", statement, verdict, evidence))
    return claims


def wake_word_claims(runs: pd.DataFrame, curves: pd.DataFrame, cfg, confidence: float, min_effect: float,
                     multiples: pd.DataFrame | None = None, key: str | None = None) -> list[Claim]:
    """Every wake-word claim, in the report's order; `cfg` is the audio evaluate params (far_targets,
    reference_frr, reference_strategy, ceiling_multiple), `multiples` the ceiling table (ceiling_multiples), `key`
    the FRR column the transfer and backbone claims are judged on (default: at the first per-clip FAR target); the
    ceiling rows are judged on the FRR the multiples name, the reference rows per clip."""
    clip_key = far_key(cfg.far_targets[0])
    key = key or clip_key
    claims = audio_claims(runs, key, confidence, min_effect)
    main = str(runs["backbone"].iloc[0])
    for other in [b for b in dict.fromkeys(runs["backbone"]) if b != main]:  # imported ones (silero-vad, ...)
        strategy = str(runs.loc[runs["backbone"] == other, "strategy"].iloc[0])  # what finetune ran on it
        claims += backbone_claims(runs, main, [other], strategy, confidence, min_effect, metric=key,
                                  lower_is_better=True, unit=" positives")
    if multiples is not None:
        # The multiples say which FRR they are of (the streams' when the ceiling was scored there).
        ceiling_key = str(multiples["metric"].iloc[0]) if "metric" in multiples and len(multiples) else clip_key
        for claim, r in zip(ceiling_claims(multiples, ceiling_key, cfg.ceiling_multiple),
                             multiples.itertuples(index=False)):
            if getattr(r, "ceiling_stopped", "converged") == "cap":  # a ceiling that hit its cap is no ceiling
                claim = Claim(claim.key, claim.statement, INCONCLUSIVE, f"under-trained: the ceiling stopped at its "
                              f"cap of {int(r.ceiling_steps)} steps; {claim.evidence}")
            claims.append(guard(claim, runs, [arm(main, r.strategy, int(r.per_class))]))
    return claims + reference_claims(curves, clip_key, cfg.reference_frr, cfg.reference_strategy)
