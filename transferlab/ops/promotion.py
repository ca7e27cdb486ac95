"""Champion vs challenger on the fixed test set: register the newest fine-tuned model and promote it
only when it beats the current champion by a margin."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from transferlab.system.io import dir_md5
from transferlab.ops import registry

# torch (through safetensors, the model, data and fine-tuning modules) is imported inside the functions that
# score models: the retrain flow imports this package and must stay torch-free until it really scores.


def accuracy(logits, labels) -> float:
    return float((logits.argmax(1) == labels).float().mean())


def detector_auroc(logits, labels) -> float:
    from transferlab.experiments.wakeword.metrics import auroc, positive_scores

    return auroc(positive_scores(logits), labels.numpy())


METRICS = {"accuracy": accuracy, "auroc": detector_auroc}  # higher is better, from test-set logits
# A wake-word detector on the continuous test streams: its false-reject rate at the target false accepts per hour
# (audio.detect.target_fa_per_hour), lower is better; scored with the streams the sweep was scored on.
STREAM_FRR = "stream_frr"


def _stream_scorer(streams: tuple[Path, Path]):
    from transferlab.experiments.wakeword.stream_eval import StreamScorer
    from transferlab.params import load_params

    params_file, streams_dir = streams
    return StreamScorer.from_params(load_params(params_file).audio, streams_dir)


def scored_runs(finetune_dir: Path, metric: str, streams: tuple[Path, Path] | None = None) -> pd.DataFrame:
    """The fine-tuning runs table with `metric` computed from each run's saved test-set logits (or, for
    STREAM_FRR, its saved stream scores; `streams`: the params file and the streams folder)."""
    from safetensors.torch import load_file

    from transferlab.analysis.sweep import PREDICTIONS_FILE, RUNS_FILE

    runs = pd.read_csv(finetune_dir / RUNS_FILE)
    if metric == STREAM_FRR:
        from transferlab.experiments.wakeword.stream_eval import SCORES_FILE, judge_runs, rate_key

        scorer = _stream_scorer(streams)
        figures, _ = judge_runs(finetune_dir / SCORES_FILE, scorer, list(runs["run_id"]), [scorer.target_fa_per_hour])
        runs[metric] = figures[rate_key(scorer.target_fa_per_hour)].to_numpy()
        return runs
    logits = load_file(str(finetune_dir / PREDICTIONS_FILE))
    runs[metric] = [METRICS[metric](logits[r], logits["test_labels"]) for r in runs["run_id"]]
    return runs


def test_score(model_dir: Path, target_dir: Path, metric: str, streams: tuple[Path, Path] | None = None) -> float:
    """`metric` of a saved model on the target's test split (the fixed test set), or for STREAM_FRR on the test
    streams."""
    from transferlab.models.artifacts import load_model
    from transferlab.data.prepared import load_prepared
    from transferlab.core.engine import predict_logits

    model, card = load_model(model_dir)
    target = load_prepared(target_dir)
    if card["classes"] != target.classes:
        raise ValueError(f"{model_dir}: classes {card['classes']} differ from the target's {target.classes}")
    if metric == STREAM_FRR:
        from transferlab.experiments.wakeword.stream_eval import rate_key

        scorer = _stream_scorer(streams)
        scores, _ = scorer.score(model, 1 - card["classes"].index("other"))
        return scorer.judge(scores, [scorer.target_fa_per_hour])[0][rate_key(scorer.target_fa_per_hour)]
    test = target.rows("test")
    return METRICS[metric](predict_logits(model, target.samples[test]), target.labels[test])


def champion_vs_challenger(root: Path, name: str, finetune_dir: Path, models_dir: Path, target_dir: Path,
                           margin: float, metric: str = "accuracy", flow_run: dict | None = None,
                           streams: Path | None = None) -> dict:
    """Register the best fine-tuned model at the largest pool; promote it if it beats the champion by
    `margin` (both scored now on the same test set; STREAM_FRR: on the `streams` folder, lower wins). Relative
    dirs (as dvc.lock names them) are relative to root and are recorded so."""
    from transferlab.analysis.sweep import best_model_dir

    root = Path(root)
    lower = metric == STREAM_FRR
    where = (root / "params.yaml", root / streams) if streams is not None else None
    if lower and where is None:
        raise ValueError(f"{metric}: promotion on the streams needs the streams folder")
    runs = scored_runs(root / finetune_dir, metric, where)
    rank = runs.assign(rank=-runs[metric] if lower else runs[metric])
    challenger_dir = best_model_dir(rank, Path(models_dir), "rank")
    current = registry.champion(root, name)
    same = registry.identical_version(root, name, challenger_dir)
    if same is not None:  # nothing new was trained: register nothing, change nothing
        return {"name": name, "metric": metric, "challenger_version": same["version"], "registered": False,
                "challenger": challenger_dir.as_posix(), "challenger_score": same["metrics"].get(f"test_{metric}"),
                "champion_version": current["version"] if current else None,
                "champion_score": current["metrics"].get(f"test_{metric}") if current else None, "margin": margin,
                "promoted": False, "files": [],
                "reason": f"the best fine-tuned model is identical to the registered v{same['version']}: "
                          "nothing new to register"}
    challenger_score = test_score(root / challenger_dir, root / target_dir, metric, where)
    champion_score = test_score(root / current["path"], root / target_dir, metric, where) if current else None
    entry = registry.register(root, name, challenger_dir, {f"test_{metric}": round(challenger_score, 5)},
                              dir_md5(root / target_dir), {"flow_run": flow_run} if flow_run else None)
    better = champion_score is None or (challenger_score <= champion_score - margin if lower else
                                        challenger_score >= champion_score + margin)
    if better:
        registry.promote(root, name, entry["version"])
    return {"name": name, "metric": metric, "challenger_version": entry["version"],
            "challenger": challenger_dir.as_posix(), "challenger_score": challenger_score,
            "champion_version": current["version"] if current else None, "champion_score": champion_score,
            "margin": margin, "promoted": better, "registered": True, "files": registry.tracked_files(root, entry),
            "reason": ("no champion yet" if champion_score is None else
                       f"{metric} {challenger_score:.4f} {('≤' if better else '>') if lower else ('≥' if better else '<')}"
                       f" {champion_score:.4f} {'-' if lower else '+'} margin {margin}")}
