"""metrics/summary.json: the handful of numbers `dvc metrics show` and `dvc exp show` put side by side across runs.
Every other figure stays in its stage's metrics/<stage>.json and results folder. Short keys, since DVC prints a
column per key and the table must fit a terminal:

    acc_small, acc_large  vision: the best transfer strategy's test accuracy at the smallest and largest pool
    gain_small            vision: best transfer − scratch at the smallest pool
    frr                   wake word: the best transfer strategy's FRR at 1 % FAR with the most positives
    tau                   transferability: LogME's Kendall τ against fine-tuning at the largest pool
    holds, fails, unsure  claims that hold, do not hold, are inconclusive
"""
from __future__ import annotations

import re
from transferlab.analysis.claims import FAILS, HOLDS, INCONCLUSIVE, Claim

def _sizes(metrics: dict, prefix: str) -> list[int]:
    return sorted(int(k[len(prefix):]) for k in metrics if re.fullmatch(rf"{prefix}\d+", k))


def summary(evaluate: dict, audio: dict, transferability: dict, claims: list[Claim]) -> dict:
    """The summary from the stages' metrics (metrics/evaluate.json, audio.json, transferability.json) and the
    report's claims; a figure whose experiment did not run is left out, never written as 0."""
    out: dict[str, float | int] = {}
    pools = _sizes(evaluate, "n")
    if pools:
        small, large = evaluate[f"n{pools[0]}"], evaluate[f"n{pools[-1]}"]
        out.update(acc_small=small.get("best_transfer_accuracy"), acc_large=large.get("best_transfer_accuracy"),
                   gain_small=small.get("gain_vs_scratch"))
    positives = _sizes(audio, "pos")
    if positives:
        most = audio[f"pos{positives[-1]}"]
        out["frr"] = (most.get(most.get("best_transfer")) or {}).get("frr_at_far1")
    scored = _sizes(transferability, "n")
    if scored:
        out["tau"] = (transferability[f"n{scored[-1]}"].get("logme") or {}).get("tau")
    verdicts = [c.verdict for c in claims]
    out.update(holds=verdicts.count(HOLDS), fails=verdicts.count(FAILS), unsure=verdicts.count(INCONCLUSIVE))
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items() if v is not None}
