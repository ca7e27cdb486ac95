"""Train one branch (hand-built pipeline or end-to-end network) at every training-set size × seed.

Both branches of a track draw their training subsets with `nested_subsets` from the same rows, so at a
given size and seed they see the same examples, and they are scored on the same test set."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from transferlab.core.convergence import CAP, CONVERGED, holdout, loss_score, stopper_for
from transferlab.system.errors import DataError
from transferlab.core.engine import TrainConfig, predict_logits, to_input, train
from transferlab.models import create_model
from transferlab.system.parallel import run_jobs
from transferlab.params import AudioBranchParams, NetworkRun, VisionBranchParams
from transferlab.system.context import CPU, Runtime

BRANCHES = {"audio-pipeline": ("audio", "pipeline"), "audio-e2e": ("audio", "end-to-end"),
            "vision-pipeline": ("vision", "pipeline"), "vision-e2e": ("vision", "end-to-end")}


def nested_subsets(labels: np.ndarray, rows: np.ndarray, sizes: list[int], seed: int) -> dict[int, np.ndarray]:
    """Class-balanced, nested training subsets: per class a seeded shuffle, classes interleaved, first n."""
    if max(sizes) > len(rows):
        raise DataError(f"sweep size {max(sizes)} exceeds the {len(rows)} training examples available")
    rng = np.random.default_rng([seed, 77])
    per_class = [rng.permutation(rows[labels[rows] == c]) for c in np.unique(labels[rows])]
    order = [r[i] for i in range(max(len(r) for r in per_class)) for r in per_class if i < len(r)]
    return {n: np.asarray(order[:n]) for n in sizes}


@dataclass
class Task:
    """What a branch learns from: inputs (samples or features), labels, and the train/test rows."""

    inputs: torch.Tensor
    labels: torch.Tensor
    train_rows: np.ndarray
    test_rows: np.ndarray
    num_classes: int


def fit_network(task: Task, rows: np.ndarray, run: NetworkRun, seed: int, in_chans: int = 1,
                runtime: Runtime = CPU) -> tuple[float, dict]:
    """Train the branch's network on `rows` with the shared engine until a validation split of those rows stops
    improving (the epochs/min/max rule is the cap); return test accuracy and how training ended."""
    torch.manual_seed(seed)
    extra = {"stem_stride": run.stem_stride} if run.stem_stride != 1 else {}
    model = create_model(run.model, num_classes=task.num_classes, in_chans=in_chans, widths=list(run.widths), **extra)
    steps = int(np.clip(run.epochs * len(rows) / run.batch_size, run.min_steps, run.max_steps))
    fit_rows, val_rows = holdout(task.labels, rows, run.convergence, seed)
    score = loss_score(task.inputs[val_rows], task.labels[val_rows], to_input,
                       device=runtime.torch_device) if len(val_rows) else None
    outcome = train(model, task.inputs[fit_rows], task.labels[fit_rows],
                    [{"params": list(model.parameters()), "lr": run.lr}],
                    TrainConfig(steps=steps, batch_size=run.batch_size, weight_decay=run.weight_decay,
                                augment=run.augment),
                    torch.Generator().manual_seed(seed), runtime,
                    stopper=stopper_for(run.convergence, len(fit_rows), run.batch_size, run.augment, score))
    pred = predict_logits(model, task.inputs[task.test_rows], runtime).argmax(1)
    return float((pred == task.labels[task.test_rows]).float().mean()), outcome.row()


def fit_logistic(task: Task, rows: np.ndarray, l2: float, seed: int) -> tuple[float, dict]:
    """Stage 2 of the audio pipeline: standardised features → multinomial logistic regression (its solver stops on
    its own tolerance: converged, unless it ran out of iterations)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    cap = 1000
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=l2, max_iter=cap, random_state=seed))
    clf.fit(task.inputs[rows].numpy(), task.labels[rows].numpy())
    steps = int(np.max(clf[-1].n_iter_))
    trained = {"steps": steps, "epochs": float(steps), "cap_steps": cap, "stopped": CAP if steps >= cap else CONVERGED,
               "stop_rule": "lbfgs tolerance"}
    return float(clf.score(task.inputs[task.test_rows].numpy(), task.labels[task.test_rows].numpy())), trained


def _fit(branch: str, task: Task, rows: np.ndarray, cfg, seed: int, runtime: Runtime) -> tuple[float, dict]:
    if branch == "audio-pipeline":
        return fit_logistic(task, rows, cfg.l2, seed)
    run = cfg.e2e if branch.endswith("e2e") else cfg.pipeline
    return fit_network(task, rows, run, seed, runtime=runtime)


def _job(branch: str, task: Task, rows: np.ndarray, cfg, size: int, seed: int, runtime: Runtime) -> dict:
    start = time.perf_counter()
    accuracy, trained = _fit(branch, task, rows, cfg, 1000 * seed + size, runtime)
    return {"branch": branch, "track": BRANCHES[branch][0], "kind": BRANCHES[branch][1], "size": size, "seed": seed,
            "accuracy": round(accuracy, 5), "train_seconds": round(time.perf_counter() - start, 2), **trained}


def run_branch(branch: str, task: Task, cfg: AudioBranchParams | VisionBranchParams,
               runtime: Runtime = CPU) -> pd.DataFrame:
    """Every size × seed of one branch; network runs spread over the runtime's workers, one thread each."""
    jobs = []
    for seed in range(cfg.seeds):
        subsets = nested_subsets(task.labels.numpy(), task.train_rows, list(cfg.sizes), seed)
        jobs += [(size, seed, subsets[size]) for size in cfg.sizes]
    jobs.sort(key=lambda j: -j[0])  # largest first: better packing over the workers
    # The task is one object in every job, so it goes to the cluster once; cutting a copy per job here (as a
    # process pool once needed) held every copy at once: 7.9 GB for the default audio-e2e branch.
    results = run_jobs(_job, [(branch, task, rows, cfg, s, seed, runtime) for s, seed, rows in jobs], runtime,
                       label=f"{branch} runs")
    return pd.DataFrame(results).sort_values(["size", "seed"]).reset_index(drop=True)


def load_task(branch: str, data_dir: Path, cfg) -> tuple[Task, dict]:
    """The inputs a branch learns from, and what its first stage did (for the pipeline branches)."""
    from transferlab.data.prepared import load_prepared

    if branch == "audio-pipeline":
        from transferlab.data.audio.mfcc import load_features

        feats, labels, meta = load_features(data_dir)
        split = meta["split"].to_numpy()
        return Task(feats, labels, np.flatnonzero(split == "train"), np.flatnonzero(split == "val"),
                    int(labels.max()) + 1), {"features": int(feats.shape[1])}
    data = load_prepared(data_dir)
    test_split = "val" if branch == "audio-e2e" else "test"
    info: dict = {}
    inputs = data.samples
    if branch == "vision-pipeline":
        from transferlab.data.canvas import box_hit, crop_digits

        crops, boxes = crop_digits(data.samples.numpy(), cfg.crop_size)
        m = data.metadata
        hit = box_hit(boxes, m["box_y"].to_numpy(), m["box_x"].to_numpy(), m["box_size"].to_numpy())
        test = m["split"].to_numpy() == "test"
        info = {"localised_train": round(float(hit[~test].mean()), 4), "localised_test": round(float(hit[test].mean()), 4)}
        inputs = torch.from_numpy(crops)
    split = data.metadata["split"].to_numpy()
    return Task(inputs, data.labels, np.flatnonzero(split == "train"), np.flatnonzero(split == test_split),
                len(data.classes)), info
