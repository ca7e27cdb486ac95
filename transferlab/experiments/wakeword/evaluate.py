"""Wake-word evaluation: detector metrics per fine-tuning run, curves over seeds, DET curves."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from safetensors.torch import load_file

from transferlab.experiments.wakeword.metrics import det_points, detection_metrics, far_key, positive_scores
from transferlab.analysis.curves import learning_curves, paired_gains, run_metrics
from transferlab.analysis.sweep import PREDICTIONS_FILE
from transferlab.params import AudioEvaluateParams
from transferlab.analysis.stats import Estimate, ratio_of_means
from transferlab.experiments.wakeword.scores import frr_per_negative_kind, mean_clip_seconds
from transferlab.experiments.wakeword.stream_eval import StreamScorer, det_over_seeds, judge_runs, rate_key

LOWER_IS_BETTER = ("frr_at_threshold", "fa_per_hour")  # plus every frr_at_far*


STREAM_UNBOUNDED = ("deployed_fa_per_hour",)  # counts per hour, not rates


def detector_metric_names(cfg: AudioEvaluateParams, fa_rates: list[float] | None = None) -> list[str]:
    """The clip metrics and, given the stream false-accept rates, the stream ones (stream_eval)."""
    stream = [*[rate_key(r) for r in fa_rates], "deployed_frr", "deployed_fa_per_hour"] if fa_rates else []
    return ["auroc", *[far_key(f) for f in cfg.far_targets], "frr_at_threshold", "fa_per_hour", *stream, "accuracy"]


def claim_key(cfg: AudioEvaluateParams, streams: StreamJudging | None) -> str:
    """What the wake-word claims are judged on: FRR at the target false accepts per hour on the streams, else
    (no streams) FRR at the first per-clip FAR target."""
    return rate_key(streams.target) if streams is not None else far_key(cfg.far_targets[0])


@dataclass(frozen=True)
class StreamJudging:
    """The streams' part of the evaluation: the scorer (streams and settings), the saved scores, the rates."""

    scorer: StreamScorer
    scores_file: Path
    rates: list[float]
    target: float


def frr_by_negative_kind(runs: pd.DataFrame, logits: dict, kinds: np.ndarray, far: float,
                         confidence: float) -> pd.DataFrame:
    """FRR at `far` against each kind of negative alone (near misses, other words, noise): which negatives
    the detector cannot tell from the wake word. Mean and CI over seeds."""
    from transferlab.analysis.stats import mean_ci

    y = logits["test_labels"].numpy()
    rows = []
    for r in runs.itertuples(index=False):
        by_kind = frr_per_negative_kind(positive_scores(logits[r.run_id]), y, kinds, far)
        rows += [{"backbone": r.backbone, "strategy": r.strategy, "per_class": r.per_class, "seed": r.seed,
                  "negatives": kind, "frr": frr} for kind, frr in by_kind.items()]
    out = []
    for key, g in pd.DataFrame(rows).groupby(["backbone", "strategy", "per_class", "negatives"], sort=True):
        est = mean_ci(g.sort_values("seed")["frr"], confidence)
        out.append(dict(zip(["backbone", "strategy", "per_class", "negatives"], key), frr=round(est.mean, 5),
                        frr_low=round(est.low, 5), frr_high=round(est.high, 5), seeds=est.n))
    return pd.DataFrame(out)


def ceiling_multiples(curves: pd.DataFrame, key: str, ceiling: dict, strategy: str,
                      confidence: float = 0.95) -> pd.DataFrame:
    """Per positives count: `strategy`'s `key` (mean and CI over seeds, main backbone) as a multiple of the
    ceiling's mean over its seeds; the CI counts both spreads (stats.ratio_of_means). A ceiling FRR of 0 leaves
    the multiples empty (NaN): nothing is a multiple of a detector that rejects no test positive."""
    main = str(curves["backbone"].iloc[0])
    ours = curves[(curves["backbone"] == main) & (curves["strategy"] == strategy)].set_index("per_class")
    top = float(ceiling[key])
    seeds = int(ceiling.get("seeds", 1))
    top_ci = Estimate(top, float(ceiling.get(f"{key}_low", top)), float(ceiling.get(f"{key}_high", top)), seeds)
    rows = []
    for n in sorted(curves.loc[curves["backbone"] == main, "per_class"].unique()):
        have = n in ours.index
        row = {"per_class": int(n), "strategy": strategy, "metric": key,
               "seeds": int(ours.loc[n, "seeds"]) if have else 0}
        for col in (key, f"{key}_low", f"{key}_high"):
            row[col.replace(key, "frr")] = float(ours.loc[n, col]) if have else np.nan
        row.update(ceiling_frr=top, ceiling_frr_low=top_ci.low, ceiling_frr_high=top_ci.high, ceiling_seeds=seeds,
                   ceiling_auroc=float(ceiling["auroc"]), ceiling_positives=int(ceiling["positives"]),
                   ceiling_negatives=int(ceiling["negatives"]), ceiling_steps=int(ceiling["steps"]),
                   ceiling_stopped=ceiling.get("stopped", "cap"), ceiling_training_set=ceiling["training_set"])
        ratio = ratio_of_means(Estimate(row["frr"], row["frr_low"], row["frr_high"], row["seeds"]), top_ci, confidence)
        row.update(multiple=ratio.mean, multiple_low=ratio.low, multiple_high=ratio.high)
        rows.append(row)
    return pd.DataFrame(rows).round(5)


def evaluate_detectors(finetune_dir: Path, cfg: AudioEvaluateParams, clip_seconds: float,
                       confidence: float, test_kinds: np.ndarray | None = None,
                       ceiling: dict | None = None, streams: StreamJudging | None = None) -> dict[str, pd.DataFrame]:
    """Per-run metrics, curves with CIs over seeds, paired gains over scratch, DET points, (when the test clips
    say which kind of negative they are) FRR against each kind of negative, (given the ceiling stage's
    result) `reference_strategy`'s FRR as a multiple of the ceiling's and (given `streams`) every run's figures
    on the continuous test streams with the DET curves in false accepts per hour."""
    runs, _ = run_metrics(finetune_dir, 2)
    logits = load_file(str(finetune_dir / PREDICTIONS_FILE))
    labels = logits["test_labels"]
    rows = [detection_metrics(logits[r], labels, cfg.far_targets, cfg.threshold, clip_seconds) for r in runs["run_id"]]
    metrics = [m for m in detector_metric_names(cfg) if m != "accuracy"]
    runs = pd.concat([runs, pd.DataFrame(rows)[metrics].round(5)], axis=1)
    det_tables = {}
    if streams is not None:
        figures, det_tables = judge_runs(streams.scores_file, streams.scorer, list(runs["run_id"]), streams.rates)
        runs = pd.concat([runs, figures.round(6)], axis=1)
    names = detector_metric_names(cfg, streams.rates if streams is not None else None)
    curves = learning_curves(runs, confidence, tuple(names), unbounded=("fa_per_hour", *STREAM_UNBOUNDED))
    main = runs["backbone"].iloc[0]
    gains = (paired_gains(runs, (main, "scratch"), confidence, metric=claim_key(cfg, streams))
             if "scratch" in set(runs["strategy"]) else pd.DataFrame())
    det = []
    for run_id in runs[(runs["per_class"] == cfg.focus_positives) & (runs["seed"] == 0)]["run_id"]:
        far, frr = det_points(positive_scores(logits[run_id]), labels.numpy())
        strategy = arms(runs).set_index("run_id").loc[run_id, "strategy"]
        det.append(pd.DataFrame({"strategy": strategy, "run_id": run_id, "far": far.round(5), "frr": frr.round(5)}))
    tables = {"runs": runs, "curves": curves, "gains": gains, "det": pd.concat(det, ignore_index=True)}
    if streams is not None:
        # The DET curve per strategy and positives count, read at rates a decade below and above the targets.
        rates = np.geomspace(min(streams.rates) / 10, max(streams.rates) * 100, 41).round(5)
        tables["det_stream"] = det_over_seeds(det_tables, arms(runs), rates)
    if test_kinds is not None:
        tables["by_negative_kind"] = frr_by_negative_kind(runs, logits, np.asarray(test_kinds), cfg.far_targets[0],
                                                          confidence)
    if ceiling is not None:
        # On the streams' key when the ceiling was scored there too (stage audio_ceiling --streams), as the claims are.
        key = claim_key(cfg, streams)
        key = key if key in ceiling else far_key(cfg.far_targets[0])
        tables["ceiling"] = ceiling_multiples(curves, key, ceiling, cfg.reference_strategy, confidence)
    return tables


def arms(table: pd.DataFrame) -> pd.DataFrame:
    """The table with each row's strategy naming its backbone when that is not the main (first) one, e.g.
    "head (silero-vad)": tables keyed by strategy alone would otherwise mix two backbones' runs."""
    main = table["backbone"].iloc[0]
    other = table["backbone"] != main
    return table.assign(strategy=table["strategy"].where(~other, table["strategy"] + " (" + table["backbone"] + ")"))


def summary(curves: pd.DataFrame, cfg: AudioEvaluateParams, multiples: pd.DataFrame | None = None,
            streams: StreamJudging | None = None) -> dict:
    """metrics/audio.json (the report's summary reads it): per positives count, each strategy's AUROC, FRR at the
    first FAR target and (with `streams`) FRR at each false-accept rate per hour and where the validation
    threshold lands on test; the best transfer strategy by the claims' key; and (with `multiples`, from
    ceiling_multiples) reference_strategy's FRR as a multiple of the ceiling's."""
    key = far_key(cfg.far_targets[0])
    stream_keys = ([*[rate_key(r) for r in streams.rates], "deployed_frr", "deployed_fa_per_hour"]
                   if streams is not None else [])
    judged = claim_key(cfg, streams)
    out = {}
    main = curves["backbone"].iloc[0]
    for n, g in arms(curves).groupby("per_class"):
        out[f"pos{int(n)}"] = {r.strategy: {"auroc": round(float(r.auroc), 4), key: round(float(getattr(r, key)), 4),
                                            "fa_per_hour": round(float(r.fa_per_hour), 2),
                                            **{k: round(float(getattr(r, k)), 4) for k in stream_keys}}
                               for r in g.itertuples(index=False)}
        transfer = g[(g["backbone"] == main) & (g["strategy"] != "scratch")]
        if not transfer.empty:
            out[f"pos{int(n)}"]["best_transfer"] = str(transfer.loc[transfer[judged].idxmin(), "strategy"])
    for r in ([] if multiples is None else multiples.itertuples(index=False)):
        if f"pos{r.per_class}" in out:
            # JSON has no NaN: an undefined multiple (ceiling FRR 0, or no runs) is null
            out[f"pos{r.per_class}"]["ceiling"] = {
                "strategy": r.strategy, "metric": getattr(r, "metric", far_key(cfg.far_targets[0])),
                "ceiling_frr": round(float(r.ceiling_frr), 4),
                "ceiling_positives": int(r.ceiling_positives),
                **{k: None if pd.isna(v) else round(float(v), 3)
                   for k, v in (("multiple", r.multiple), ("low", r.multiple_low), ("high", r.multiple_high))}}
    return out


def frr_plot_table(curves: pd.DataFrame, cfg: AudioEvaluateParams) -> pd.DataFrame:
    key = far_key(cfg.far_targets[0])
    return arms(curves).pivot(index="per_class", columns="strategy", values=key).reset_index().rename(
        columns={"per_class": "positives"})
