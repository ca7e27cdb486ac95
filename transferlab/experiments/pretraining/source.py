"""Pre-training on the source task (A), resumable, logged with dvclive."""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from transferlab.models.artifacts import make_card, parent, save_model
from transferlab.data.prepared import Prepared
from transferlab.data.drift import training_statistics
from transferlab.core.convergence import Stopper, loss_score
from transferlab.core.engine import StepLog, TrainConfig, predict_logits, steps_per_epoch, to_input, train
from transferlab.system.io import write_text_atomic
from transferlab.models import count_parameters, create_model
from transferlab.params import TrainingParams
from transferlab.system.progress import progress_bar
from transferlab.system.context import Runtime

LOG_POINTS = 20  # most dvclive rows (and validation passes, checkpoints) of one pre-training run


@dataclass(frozen=True)
class SourceVariant:
    """Which part of the source a backbone learns from: its first `max_images` training images (a class-balanced,
    nested draw: each smaller source is part of every larger one), trained to at least `min_steps` steps; or every
    image with its pixels moved by one fixed permutation (the control: as much data, no spatial structure)."""

    max_images: int | None = None
    min_steps: int = 0
    permute_pixels: bool = False


def nested_subset(labels: np.ndarray, rows: np.ndarray, n: int, seed: int) -> np.ndarray:
    """The first n rows of a class-balanced order (round-robin over per-class shuffles), in row order."""
    rng = np.random.default_rng([seed, 17])
    per_class = [rng.permutation(rows[labels[rows] == c]) for c in rng.permutation(np.unique(labels[rows]))]
    order = [r[i] for i in range(max(map(len, per_class))) for r in per_class if i < len(r)]
    return np.sort(np.asarray(order[:n], dtype=rows.dtype))


class PixelPermuted(nn.Module):
    """The control's training wrapper: the model sees each (augmented) image with its pixel positions permuted."""

    def __init__(self, model: nn.Module, shape: tuple[int, int], seed: int):
        super().__init__()
        self.model = model
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("perm", torch.randperm(shape[0] * shape[1], generator=gen), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(2)[:, :, self.perm]  # one permutation for every channel and image
        return self.model(flat.view_as(x))


def fingerprint(cfg: TrainingParams, source_md5: str | None, rows: int, variant: SourceVariant) -> str:
    """What a checkpoint was made from; a checkpoint from other params or data is never resumed."""
    blob = json.dumps({"params": cfg.model_dump(), "source": source_md5, "rows": rows, "variant": asdict(variant)},
                      sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()


class EpochLog:
    """Means of the step logs over each `per_epoch` steps (whole epochs), to dvclive. Its state (dvclive's step,
    the sums so far) goes into the checkpoint: a resumed run drops the rows the killed run logged after its
    checkpoint and logs those again, so the curves have the rows of an uninterrupted run."""

    def __init__(self, live_dir: Path, per_epoch: int, steps: int, val_accuracy: Callable[[], float]):
        self.live_dir, self.per_epoch, self.steps, self.val_accuracy = live_dir, per_epoch, steps, val_accuracy
        self.sums, self.step, self.resumed, self._live = [0.0, 0.0, 0], 0, False, None

    def state_dict(self) -> dict:
        return {"live_step": self.step, "sums": list(self.sums)}

    def load_state_dict(self, state: dict) -> None:
        step, sums = state["live_step"], state["sums"]
        if type(step) is not int or step < 0 or [type(v) for v in sums] != [float, float, int]:
            raise ValueError("the dvclive state is not a step and three sums")
        self.step, self.sums, self.resumed = step, list(sums), True

    @property
    def live(self):
        # A fresh run clears the old curves; a resumed one keeps those up to its checkpoint.
        if self._live is None:
            from dvclive import Live

            if self.resumed:
                _drop_rows_from(self.live_dir / "plots" / "metrics", self.step)
            self._live = Live(str(self.live_dir), resume=self.resumed, save_dvc_exp=False, dvcyaml=None)
            if self.resumed:
                self._live.step = self.step
        return self._live

    def __call__(self, log: StepLog, add: bool = True) -> None:
        live = self.live  # opened at the first step, as train() has decided by then whether it resumes
        if add:
            self.sums = [self.sums[0] + log.loss, self.sums[1] + log.accuracy, self.sums[2] + 1]
        if log.step % self.per_epoch == 0 or log.step == self.steps:
            loss, correct, n = self.sums
            live.log_metric("train/loss", loss / n)
            live.log_metric("train/accuracy", correct / n)
            live.log_metric("val/accuracy", self.val_accuracy())
            live.next_step()
            self.step, self.sums = live.step, [0.0, 0.0, 0]

    def end(self) -> None:
        if self.sums[2]:  # training converged inside a logging interval: its last steps are a row too
            self.__call__(StepLog(self.steps, 0.0, 0.0), add=False)
        self.live.end()


def _drop_rows_from(metrics_dir: Path, step: int) -> None:
    """Remove the rows at `step` and later (and any torn by the kill) from dvclive's metric histories."""
    for tsv in sorted(metrics_dir.rglob("*.tsv")):
        header, *rows = tsv.read_text().splitlines(keepends=True) or [""]
        columns = header.rstrip("\r\n").split("\t")
        if "step" not in columns:
            continue
        at = columns.index("step")
        keep = [r for r in rows if r.endswith("\n") and len(f := r.split("\t")) == len(columns)
                and f[at].strip().isdigit() and int(f[at]) < step]
        if keep != rows:
            write_text_atomic(tsv, "".join([header, *keep]))


def pretrain(cfg: TrainingParams, source: Prepared, source_dir: Path, out_dir: Path, checkpoint_dir: Path,
             live_dir: Path, runtime: Runtime, preprocessing: dict,
             variant: SourceVariant = SourceVariant()) -> dict:
    train_rows = source.rows("train")
    if variant.max_images is not None and variant.max_images < len(train_rows):
        train_rows = nested_subset(source.labels.numpy(), train_rows, variant.max_images, cfg.seed)
    val_rows = source.rows("val")
    torch.manual_seed(cfg.seed)
    model = create_model(cfg.model.name, num_classes=len(source.classes), in_chans=preprocessing["channels"],
                         widths=list(cfg.model.widths), dropout=cfg.model.dropout)
    trained = (PixelPermuted(model, tuple(source.samples.shape[-2:]), cfg.seed) if variant.permute_pixels
               else model)
    # The sampler's epoch (the last partial batch dropped): epochs, logs and checkpoints share one boundary. A
    # small source trains whole epochs until min_steps: the same recipe, not 8 steps on 300 images.
    per_epoch = steps_per_epoch(len(train_rows), cfg.batch_size, pad=cfg.augment)
    epochs = max(cfg.epochs, math.ceil(variant.min_steps / per_epoch))
    steps = epochs * per_epoch
    # Log, validate and checkpoint every few epochs when there are many (at most LOG_POINTS times): at 300 source
    # images an epoch is 2 steps, and a validation pass and a checkpoint per epoch cost more than the training.
    every = per_epoch * math.ceil(epochs / LOG_POINTS)
    src = parent(source_dir, "source")
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    tag = fingerprint(cfg, src["md5"], len(train_rows), variant)
    checkpoint = checkpoint_dir / f"{tag}.safetensors"
    # Checkpoints of other params or data, those of the old pickle format (*.pt) and torn writes; files
    # moved aside as unreadable (*.unreadable-*) are kept for a look.
    for stale in [*checkpoint_dir.glob("*.safetensors"), *checkpoint_dir.glob("*.pt"), *checkpoint_dir.glob(".*.tmp")]:
        if stale != checkpoint:
            stale.unlink()

    def val_accuracy() -> float:
        if not len(val_rows):
            return float("nan")
        pred = predict_logits(trained, source.samples[val_rows], runtime).argmax(1)
        return float((pred == source.labels[val_rows]).float().mean())

    log = EpochLog(live_dir, every, steps, val_accuracy)

    def on_step(step: StepLog) -> None:
        bar.update(task, completed=step.step, description=f"pretrain loss {step.loss:.3f}")
        log(step)

    gen = torch.Generator().manual_seed(cfg.seed)
    with progress_bar() as bar:
        task = bar.add_task("pretrain", total=steps)
        # `epochs` is the cap: training stops once the source's own validation loss stops improving (the
        # validation split of the source, never the target), with the best weights kept.
        score = loss_score(source.samples[val_rows], source.labels[val_rows], to_input,
                           device=runtime.torch_device) if len(val_rows) else None
        outcome = train(trained, source.samples[train_rows], source.labels[train_rows],
                        [{"name": "all", "params": list(model.parameters()), "lr": cfg.lr}],
                        TrainConfig(steps=steps, batch_size=cfg.batch_size, weight_decay=cfg.weight_decay,
                                    label_smoothing=cfg.label_smoothing, augment=cfg.augment,
                                    steps_per_checkpoint=every),
                        gen, runtime, checkpoint=checkpoint, on_step=on_step, every=1, resumable={"log": log},
                        stopper=Stopper(cfg.convergence, per_epoch, score, len(train_rows)))
    log.end()
    metrics = {**outcome.row(), "cap_epochs": epochs, "val_accuracy": val_accuracy(),
               "train_images": int(len(train_rows)), "parameters": count_parameters(model), "resumed": log.resumed}
    card = make_card(architecture={"name": cfg.model.name,
                                   "kwargs": {"widths": list(cfg.model.widths), "dropout": cfg.model.dropout}},
                     classes=source.classes, preprocessing=preprocessing,
                     params={"pretrain": cfg.model_dump(), "source_variant": asdict(variant)},
                     parents=[src], metrics=metrics, extra={"task": "source"},
                     training_stats=training_statistics(source.samples[train_rows], preprocessing["modality"],
                                                        f"{len(train_rows)} source training samples"),
                     runtime=runtime)
    save_model(out_dir, model, card)
    # The finished state stays as the resume point (a forced re-run only reloads it); it is replaced
    # when params or data change.
    return metrics
