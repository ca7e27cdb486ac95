"""The wake-word ceiling: what the same detector reaches on the same test set when positives are plentiful.

The few-positive sweep is judged against it (audio_evaluate): an external FRR from another test set says
nothing about ours, while this one shares the test clips, the held-out voices and the architecture, so the
only thing it has more of is labelled data."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from transferlab.models.artifacts import load_model
from transferlab.data.prepared import Prepared
from transferlab.experiments.wakeword.metrics import detection_metrics
from transferlab.core.convergence import Outcome, holdout, loss_score, stopper_for
from transferlab.core.engine import TrainConfig, predict_logits, to_input, train
from transferlab.params import AudioPrepareParams, TransferParams
from transferlab.params.audio import AudioCeilingParams
from transferlab.system.context import CPU, Runtime
from transferlab.system.parallel import run_jobs
from transferlab.analysis.stats import mean_ci
from transferlab.core.recipes import apply_recipe
from transferlab.data.audio.build import speaker_roles, synth_target
from transferlab.data.audio.clips import AudioSet
from transferlab.experiments.wakeword.scores import frr_per_negative_kind, mean_clip_seconds

CEILING_FILE = "ceiling.json"
KINDS = ("near_miss", "other_word", "noise")


def plentiful_training_set(p: AudioPrepareParams, positives: int, runtime: Runtime) -> AudioSet:
    """`positives` wake words and as many negatives in the target's mix, spoken by B-train voices only (the
    prepared set's roles, so test voices stay unheard), drawn with another seed than the prepared set's."""
    t = p.target.model_copy(update={"positives_train": positives, "negatives_train": positives,
                                    "positives_test": 0, "negatives_test": 0})
    data, _ = synth_target(p.model_copy(update={"seed": p.seed + 1000, "target": t}),
                           speaker_roles(p.voices, p.seed), runtime)
    return data


def training_set(p: AudioPrepareParams, target: Prepared, positives: int,
                 runtime: Runtime) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(clips, labels, where they came from). eSpeak targets get fresh plentiful clips; a user's folder cannot
    be synthesised more of, so its ceiling is every clip of its prepared training split."""
    if p.target.kind == "espeak":
        data = plentiful_training_set(p, positives, runtime)
        return (torch.from_numpy(np.ascontiguousarray(data.clips)), torch.from_numpy(data.labels),
                "synthesised, B-train voices only")
    rows = target.rows("train")
    return target.samples[rows], target.labels[rows], "every clip of the prepared training split"


def pretrained_detector(backbone: Path, seed: int) -> nn.Module:
    """The pre-trained backbone with a new two-class head, initialised from `seed`."""
    torch.manual_seed(seed)
    model, _ = load_model(backbone)
    model.reset_classifier(2)
    return model


def fit_detector(model: nn.Module, strategy: str, samples: torch.Tensor, labels: torch.Tensor,
                 cfg: TransferParams, steps: int, batch_size: int, seed: int,
                 runtime: Runtime = CPU, rule=None) -> tuple[float, Outcome]:
    """Train by `strategy`'s recipe (the sweep's learning rates, weight decay, augmentation) with the engine, up
    to `steps`, until a validation share of these clips stops improving (`rule`, default the sweep's); return the
    seconds it took and how training ended."""
    rule = rule or cfg.convergence
    recipe = apply_recipe(model, strategy, cfg)
    began = time.perf_counter()
    fit_rows, val_rows = holdout(labels, np.arange(len(labels)), rule, seed)
    score = loss_score(samples[val_rows], labels[val_rows], to_input,
                       device=runtime.torch_device) if len(val_rows) else None
    outcome = train(model, samples[fit_rows], labels[fit_rows], recipe.param_groups,
                    TrainConfig(steps=steps, batch_size=batch_size, weight_decay=cfg.weight_decay, augment=cfg.augment),
                    torch.Generator().manual_seed(seed), runtime,
                    stopper=stopper_for(rule, len(fit_rows), batch_size, cfg.augment, score))
    return time.perf_counter() - began, outcome


def score_detector(model: nn.Module, target: Prepared, far_targets: list[float], threshold: float,
                   runtime: Runtime = CPU) -> dict:
    """The test split scored as audio_evaluate scores a run, plus FRR at the first FAR target against each kind
    of negative alone (when the metadata says which)."""
    test = target.rows("test")
    logits = predict_logits(model, target.samples[test], runtime)
    labels = target.labels[test]
    out = detection_metrics(logits, labels, far_targets, threshold, mean_clip_seconds(target.metadata))
    out = {k: round(float(v), 5) for k, v in out.items()}
    if "kind" in target.metadata:
        kinds = target.metadata["kind"].to_numpy()[test]
        scores = torch.softmax(logits.float(), 1)[:, 1].numpy()
        by_kind = frr_per_negative_kind(scores, labels.numpy(), kinds, far_targets[0])
        out["frr_by_negative_kind"] = {k: round(v, 5) for k, v in by_kind.items()}
    out.update(test_clips=len(test), test_positives=int(labels.sum()))
    return out


def _train_one(backbone: Path, x: torch.Tensor, y: torch.Tensor, finetune: TransferParams,
               ceiling: AudioCeilingParams, seed: int, runtime: Runtime) -> tuple[dict, float, dict]:
    """One seed's ceiling detector (a job of run_jobs): its weights, training seconds and how training ended."""
    model = pretrained_detector(backbone, seed)
    seconds, outcome = fit_detector(model, "full", x, y, finetune, ceiling.steps, ceiling.batch_size, seed,
                                    runtime, ceiling.convergence)
    return {k: v.cpu() for k, v in model.state_dict().items()}, seconds, outcome.row()


def _summarise(runs: list[dict], confidence: float = 0.95) -> dict:
    """The seeds' mean of every score, its CI (`<key>_low`, `<key>_high`), and how training ended: at the cap
    when any seed did (a ceiling with an under-trained seed voids the claims judged against it)."""
    out: dict = {"seeds": len(runs), "steps": max(r["steps"] for r in runs),
                 "stopped": "cap" if any(r["stopped"] == "cap" for r in runs) else "converged"}
    for key in ("auroc", *(k for k in runs[0] if k.startswith("frr_at") or k == "fa_per_hour")):
        est = mean_ci([r[key] for r in runs], confidence)
        out.update({key: round(est.mean, 5), f"{key}_low": round(est.low, 5), f"{key}_high": round(est.high, 5)})
    return out


def ceiling_detector(prepare: AudioPrepareParams, finetune: TransferParams, ceiling: AudioCeilingParams,
                     target: Prepared, backbone: Path, far_targets: list[float], threshold: float,
                     runtime: Runtime = CPU, streams=None, fa_rates: list[float] = ()) -> dict:
    """Full fine-tuning of the pre-trained backbone on `ceiling.positives` plentiful positives, once per seed
    (ceiling.seed onwards), each scored on the test split and (given `streams`, a stream_eval.StreamScorer) on the
    continuous test streams at each of `fa_rates`, as the sweep's runs are; what ceiling.json holds: the mean
    over seeds with its CI, and every seed's run under `runs`. One run is no yardstick: two runs of one recipe
    differed by 0.13 in FRR@1%FAR (measured), enough to turn the claims judged against it around."""
    began = time.perf_counter()
    x, y, origin = training_set(prepare, target, ceiling.positives, runtime)
    data_seconds = time.perf_counter() - began
    seeds = [ceiling.seed + i for i in range(ceiling.seeds)]
    jobs = [(backbone, x, y, finetune, ceiling, seed, runtime) for seed in seeds]
    # On a GPU the seeds take turns on it, here; on CPU they spread over the workers.
    trained = run_jobs(_train_one, jobs, runtime if runtime.device == "cpu" else runtime.with_workers(1),
                       label="ceiling seeds")
    runs = []
    for seed, (state, seconds, row) in zip(seeds, trained):
        model = pretrained_detector(backbone, seed)
        model.load_state_dict(state)
        run = {"seed": seed, **row, "train_seconds": round(seconds, 1),
               **score_detector(model.to(runtime.torch_device), target, far_targets, threshold, runtime)}
        if streams is not None:
            scores, _ = streams.score(model, 1, runtime)
            figures, _ = streams.judge(scores, list(fa_rates))
            run.update({k: round(float(v), 5) for k, v in figures.items() if k.startswith("frr_at")})
        runs.append(run)
    first = runs[0]
    return {"strategy": "full", "backbone": str(backbone), "training_set": origin, "positives": int(y.sum()),
            "negatives": int((y == 0).sum()), "cap_steps": first["cap_steps"], "stop_rule": first["stop_rule"],
            "batch_size": ceiling.batch_size, "far_targets": list(far_targets),
            "data_seconds": round(data_seconds, 1), "train_seconds": round(sum(r["train_seconds"] for r in runs), 1),
            **_summarise(runs), "frr_by_negative_kind": {  # mean over seeds
                k: round(float(np.mean([r["frr_by_negative_kind"][k] for r in runs])), 5)
                for k in first.get("frr_by_negative_kind", {})},
            "test_clips": first["test_clips"], "test_positives": first["test_positives"], "runs": runs}
