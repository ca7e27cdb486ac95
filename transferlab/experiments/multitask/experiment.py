"""The multi-task experiments: shared network vs one network per task (at several widths), missing labels
(masked loss vs missing-as-negative), and one task with few labels. Every network uses the one engine."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from transferlab.core.convergence import Outcome, combined, holdout, loss_score, stopper_for
from transferlab.core.engine import TrainConfig, predict_logits, to_input, train
from transferlab.models import count_parameters, create_model
from transferlab.core.objectives import masked_bce
from transferlab.system.parallel import run_jobs
from transferlab.params import MultitaskParams
from transferlab.system.context import CPU, Runtime
from transferlab.experiments.multitask.summary import FEW, MISSING, WIDTH



@dataclass(frozen=True)
class Arm:
    """One trained configuration: `shared` (one net, K outputs) or `separate` (K nets, one output each)."""

    experiment: str
    arm: str  # shared | separate | masked | as_negative
    width: tuple[int, ...]
    missing: float
    seed: int

    @property
    def separate(self) -> bool:
        return self.arm == "separate"


def plan_arms(cfg: MultitaskParams) -> list[Arm]:
    main = tuple(cfg.widths[-1])
    arms = []
    for seed in range(cfg.seeds):
        for w in cfg.widths:
            arms += [Arm(WIDTH, "shared", tuple(w), 0.0, seed), Arm(WIDTH, "separate", tuple(w), 0.0, seed)]
        arms += [Arm(WIDTH, "shared", tuple(w), 0.0, seed) for w in cfg.shared_widths]
        # At 0 % missing both treatments are the same training run: the width experiment's shared network.
        for f in (f for f in cfg.missing_fractions if f > 0):
            arms += [Arm(MISSING, "masked", main, f, seed), Arm(MISSING, "as_negative", main, f, seed)]
        arms += [Arm(FEW, "shared", main, 0.0, seed), Arm(FEW, "separate", main, 0.0, seed)]
    return arms


def training_targets(labels: np.ndarray, arm: Arm, cfg: MultitaskParams, tasks: list[str]) -> np.ndarray:
    """The (N, K) labels this arm trains on; NaN marks a missing ("?") entry."""
    y = labels.astype(np.float32).copy()
    if arm.missing > 0:
        # One uniform draw per entry and seed: the 30 % missing entries are a subset of the 60 % ones.
        u = np.random.default_rng([arm.seed, 91]).random(y.shape)
        y[u < arm.missing] = 0.0 if arm.arm == "as_negative" else np.nan
    if arm.experiment == FEW:
        j = tasks.index(cfg.few_labels_task)
        y[cfg.few_labels:, j] = np.nan  # the first rows of the seeded subset keep their label
    return y


def _fit(samples: torch.Tensor, targets: np.ndarray, cfg: MultitaskParams, width: tuple[int, ...], seed: int,
         outputs: int, runtime: Runtime = CPU) -> tuple[torch.nn.Module, Outcome]:
    torch.manual_seed(seed)
    model = create_model(cfg.model, num_classes=outputs, widths=list(width), stem_stride=cfg.stem_stride)
    keep = np.flatnonzero(~np.isnan(targets).all(1))  # a row without any label teaches nothing
    # Validation scenes for the stopping rule: a random share of this arm's own labelled scenes (one stratum: a
    # scene's label pattern is too rare a key), scored by the same masked loss the arm trains on.
    fit_rows, val_rows = holdout(None, keep, cfg.convergence, seed, strata=np.zeros(len(keep)))
    y = torch.from_numpy(targets)
    score = loss_score(samples[val_rows], y[val_rows], to_input,
                       lambda out, t: masked_bce(out, t)[0] * len(out), device=runtime.torch_device) \
        if len(val_rows) else None
    outcome = train(model, samples[fit_rows], y[fit_rows], [{"params": list(model.parameters()), "lr": cfg.lr}],
                    TrainConfig(steps=cfg.steps, batch_size=cfg.batch_size, weight_decay=cfg.weight_decay),
                    torch.Generator().manual_seed(seed), runtime, objective=masked_bce,
                    stopper=stopper_for(cfg.convergence, len(fit_rows), cfg.batch_size, False, score))
    return model, outcome


def run_arm(arm: Arm, samples: torch.Tensor, labels: np.ndarray, train_rows: np.ndarray, test_rows: np.ndarray,
            cfg: MultitaskParams, tasks: list[str], runtime: Runtime = CPU) -> tuple[dict, np.ndarray]:
    """Train one arm; return its record and test-set scores (N_test, K)."""
    start = time.perf_counter()
    targets = training_targets(labels[train_rows], arm, cfg, tasks)
    seed = 1000 * arm.seed + 7
    x_train, x_test = samples[train_rows], samples[test_rows]
    if arm.separate:
        only = [tasks.index(cfg.few_labels_task)] if arm.experiment == FEW else range(len(tasks))
        scores = np.full((len(test_rows), len(tasks)), np.nan, np.float32)
        params, outcomes = 0, []
        for j in only:
            model, outcome = _fit(x_train, targets[:, j:j + 1], cfg, arm.width, seed + j, 1, runtime)
            scores[:, j] = predict_logits(model, x_test, runtime)[:, 0].numpy()
            params += count_parameters(model)
            outcomes.append(outcome)
        outcome = combined(*outcomes)
    else:
        model, outcome = _fit(x_train, targets, cfg, arm.width, seed, len(tasks), runtime)
        scores = predict_logits(model, x_test, runtime).numpy()
        params = count_parameters(model)
    record = {"experiment": arm.experiment, "arm": arm.arm, "width": "-".join(map(str, arm.width)),
              "missing": arm.missing, "seed": arm.seed, "params": params,
              "train_seconds": round(time.perf_counter() - start, 2), **outcome.row()}
    return record, scores


def task_metrics(scores: np.ndarray, labels: np.ndarray, tasks: list[str]) -> list[dict]:
    """AUROC, average precision and accuracy (logit > 0) per task; tasks without scores are skipped."""
    from torchmetrics.functional.classification import binary_auroc, binary_average_precision

    rows = []
    for j, task in enumerate(tasks):
        if np.isnan(scores[:, j]).any():
            continue
        s, y = torch.from_numpy(scores[:, j]), torch.from_numpy(labels[:, j]).long()
        rows.append({"task": task, "auroc": float(binary_auroc(s, y)), "ap": float(binary_average_precision(s, y)),
                     "accuracy": float(((s > 0).long() == y).float().mean())})
    return rows


def seeded_subset(train_rows: np.ndarray, size: int, seed: int) -> np.ndarray:
    return np.random.default_rng([seed, 93]).permutation(train_rows)[:size]


def _job(arm: Arm, samples, labels, train_rows, test_rows, cfg, tasks, runtime: Runtime) -> list[dict]:
    rows = seeded_subset(train_rows, cfg.train_scenes, arm.seed)
    record, scores = run_arm(arm, samples, labels, rows, test_rows, cfg, tasks, runtime)
    return [{**record, **m} for m in task_metrics(scores, labels[test_rows], tasks)]


def run_experiments(samples: torch.Tensor, labels: np.ndarray, split: np.ndarray, cfg: MultitaskParams,
                    runtime: Runtime = CPU) -> pd.DataFrame:
    """Every arm × seed; one row per arm, seed and task."""
    tasks = list(cfg.scenes.tasks)
    train_rows, test_rows = np.flatnonzero(split == "train"), np.flatnonzero(split == "test")
    arms = plan_arms(cfg)
    # Most expensive first (separate arms train K networks) for better packing over the workers.
    order = sorted(range(len(arms)), key=lambda i: -(len(tasks) if arms[i].separate else 1) * sum(arms[i].width))
    results = run_jobs(_job, [(arms[i], samples, labels, train_rows, test_rows, cfg, tasks, runtime) for i in order],
                       runtime, label="multi-task arms")
    by_arm = dict(zip(order, results))
    return pd.DataFrame([r for i in range(len(arms)) for r in by_arm[i]])
