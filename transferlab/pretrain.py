"""Pre-training on the source task (A), resumable, logged with dvclive."""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import torch

from .artifacts import make_card, parent, save_model
from .data.prepared import Prepared
from .drift import training_statistics
from .engine import StepLog, TrainConfig, predict_logits, train
from .models import count_parameters, create_model
from .params import TrainingParams
from .progress import progress_bar


def fingerprint(cfg: TrainingParams, source_md5: str | None, rows: int) -> str:
    """What a checkpoint was made from; a checkpoint from other params or data is never resumed."""
    blob = json.dumps({"params": cfg.model_dump(), "source": source_md5, "rows": rows}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()


def pretrain(cfg: TrainingParams, source: Prepared, source_dir: Path, out_dir: Path, checkpoint_dir: Path,
             live_dir: Path, device: torch.device, preprocessing: dict,
             max_train_images: int | None = None) -> dict:
    from dvclive import Live

    train_rows = source.rows("train")
    if max_train_images is not None:
        train_rows = train_rows[:max_train_images]
    val_rows = source.rows("val")
    torch.manual_seed(cfg.seed)
    model = create_model(cfg.model.name, num_classes=len(source.classes), in_chans=preprocessing["channels"],
                         widths=list(cfg.model.widths), dropout=cfg.model.dropout)
    per_epoch = math.ceil(len(train_rows) / cfg.batch_size)
    steps = cfg.epochs * per_epoch
    src = parent(source_dir, "source")
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    tag = fingerprint(cfg, src["md5"], len(train_rows))
    checkpoint = checkpoint_dir / f"{tag}.pt"
    for stale in checkpoint_dir.glob("*.pt"):
        if stale != checkpoint:
            stale.unlink()
    resumed = checkpoint.exists()
    live = Live(str(live_dir), resume=resumed, save_dvc_exp=False, dvcyaml=None)

    def val_accuracy() -> float:
        if not len(val_rows):
            return float("nan")
        pred = predict_logits(model, source.samples[val_rows], device).argmax(1)
        return float((pred == source.labels[val_rows]).float().mean())

    epoch_sums = {"loss": 0.0, "correct": 0.0, "steps": 0}

    def on_steps(log: StepLog) -> None:
        bar.update(task, completed=log.step, description=f"pretrain loss {log.loss:.3f}")
        epoch_sums["loss"] += log.loss
        epoch_sums["correct"] += log.accuracy
        epoch_sums["steps"] += 1
        if log.step % per_epoch == 0 or log.step == steps:
            live.log_metric("train/loss", epoch_sums["loss"] / epoch_sums["steps"])
            live.log_metric("train/accuracy", epoch_sums["correct"] / epoch_sums["steps"])
            live.log_metric("val/accuracy", val_accuracy())
            live.next_step()
            epoch_sums.update(loss=0.0, correct=0.0, steps=0)

    gen = torch.Generator().manual_seed(cfg.seed)
    with progress_bar() as bar:
        task = bar.add_task("pretrain", total=steps)
        train(model, source.samples[train_rows], source.labels[train_rows],
              [{"name": "all", "params": list(model.parameters()), "lr": cfg.lr}],
              TrainConfig(steps=steps, batch_size=cfg.batch_size, weight_decay=cfg.weight_decay,
                          label_smoothing=cfg.label_smoothing, augment=cfg.augment, steps_per_checkpoint=per_epoch),
              gen, device, checkpoint=checkpoint, on_step=on_steps, every=1)
    live.end()
    metrics = {"epochs": cfg.epochs, "val_accuracy": val_accuracy(), "train_images": int(len(train_rows)),
               "parameters": count_parameters(model), "resumed": resumed}
    card = make_card(architecture={"name": cfg.model.name,
                                   "kwargs": {"widths": list(cfg.model.widths), "dropout": cfg.model.dropout}},
                     classes=source.classes, preprocessing=preprocessing,
                     params={"pretrain": cfg.model_dump(), "max_train_images": max_train_images},
                     parents=[src], metrics=metrics, extra={"task": "source"},
                     training_stats=training_statistics(source.samples[train_rows], preprocessing["modality"],
                                                        f"{len(train_rows)} source training samples"))
    save_model(out_dir, model, card)
    # The finished state stays as the resume point (a forced re-run only reloads it); it is replaced
    # when params or data change.
    return metrics
