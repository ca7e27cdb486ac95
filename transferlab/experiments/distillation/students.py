"""Distillation's training: the teacher picked from the sweep, the students on its softened outputs or on hard
labels (seeded, in parallel jobs), and their CPU latency."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from transferlab.data.prepared import Prepared
from transferlab.analysis.sweep import best_model_dir
from transferlab.core.convergence import holdout, loss_score, stopper_for
from transferlab.core.engine import TrainConfig, conv_layout, in_layout, predict_logits, to_input, train
from transferlab.models import count_parameters, create_model
from transferlab.core.objectives import distillation
from transferlab.system.parallel import run_jobs
from transferlab.params import DistillParams
from transferlab.system.context import CPU, Runtime


@dataclass(frozen=True)
class StudentRun:
    per_class: int
    seed: int
    kind: str  # hard | distilled
    omitted: str | None  # class left out of the transfer data


def pick_teacher(runs: pd.DataFrame, models_dir: Path, choice: str) -> Path:
    """The seed-0 model directory of the teacher: a named model, or the best fine-tuned one."""
    if choice != "best":
        path = models_dir / choice
        if not (path / "card.json").exists():
            raise FileNotFoundError(f"distill.teacher: {path} is not a fine-tuned model")
        return path
    return best_model_dir(runs, models_dir)


def plan_students(cfg: DistillParams) -> list[StudentRun]:
    runs = [StudentRun(n, s, kind, None) for s in range(cfg.seeds) for n in cfg.per_class for kind in ("hard", "distilled")]
    if cfg.omit_class is not None:
        runs += [StudentRun(max(cfg.per_class), s, kind, cfg.omit_class) for s in range(cfg.seeds)
                 for kind in ("hard", "distilled")]
    return runs


def transfer_rows(target: Prepared, run: StudentRun) -> np.ndarray:
    rows = target.pool(run.seed, run.per_class)
    if run.omitted is not None:
        rows = rows[target.labels[rows].numpy() != target.classes.index(run.omitted)]
    return rows


def make_student(cfg: DistillParams, num_classes: int) -> torch.nn.Module:
    extra = {"stem_stride": cfg.student.stem_stride} if cfg.student.stem_stride != 1 else {}
    return create_model(cfg.student.name, num_classes=num_classes, widths=list(cfg.student.widths), **extra)


def train_student(run: StudentRun, target: Prepared, teacher_logits: torch.Tensor, cfg: DistillParams,
                  runtime: Runtime = CPU) -> dict:
    """Train one student on its transfer rows; teacher_logits covers every row of the target set."""
    rows = transfer_rows(target, run)
    torch.manual_seed(30_000 + run.seed)  # hard and distilled students start from the same weights
    model = make_student(cfg, len(target.classes))
    alpha = cfg.alpha if run.kind == "distilled" else 0.0
    objective = distillation(cfg.temperature, alpha)
    start = time.perf_counter()
    # The stopping rule's rows come out of the transfer rows (the same for both kinds of student), each student
    # judged by its own objective on them: a distilled one by how well it matches the teacher.
    fit_rows, val_rows = holdout(target.labels, rows, cfg.convergence, 50_000 + run.seed)
    score = loss_score(target.samples[val_rows], (target.labels[val_rows], teacher_logits[val_rows]), to_input,
                       lambda out, t: objective(out, t)[0] * len(out), device=runtime.torch_device) \
        if len(val_rows) else None
    outcome = train(model, target.samples[fit_rows], (target.labels[fit_rows], teacher_logits[fit_rows]),
                    [{"params": list(model.parameters()), "lr": cfg.lr}],
                    TrainConfig(steps=cfg.steps, batch_size=cfg.batch_size, weight_decay=cfg.weight_decay),
                    torch.Generator().manual_seed(40_000 + run.seed), runtime, objective=objective,
                    stopper=stopper_for(cfg.convergence, len(fit_rows), cfg.batch_size, False, score))
    test = target.rows("test")
    pred = predict_logits(model, target.samples[test], runtime).argmax(1)
    y = target.labels[test]
    record = {"per_class": run.per_class, "seed": run.seed, "kind": run.kind, "omitted": run.omitted or "",
              "transfer_images": len(rows), "accuracy": float((pred == y).float().mean()),
              "train_seconds": round(time.perf_counter() - start, 2), **outcome.row()}
    if run.omitted is not None:
        k = target.classes.index(run.omitted)
        record["omitted_accuracy"] = float((pred[y == k] == k).float().mean())
    return record


def latency_ms(model: torch.nn.Module, samples: torch.Tensor, repeats: int) -> float:
    """Median wall time of one forward pass over `samples` on one CPU thread, in milliseconds."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model.eval()
        times = []
        with torch.no_grad(), conv_layout(model, "cpu") as layout:  # the layout training and prediction use
            x = in_layout(to_input(samples), layout)
            model(x)  # warm-up: first call allocates
            for _ in range(repeats):
                t0 = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - t0)
        return float(np.median(times) * 1000)
    finally:
        torch.set_num_threads(threads)


def run_distillation(teacher: torch.nn.Module, target: Prepared, cfg: DistillParams,
                     runtime: Runtime = CPU) -> tuple[pd.DataFrame, dict]:
    """Every student run, plus the teacher's accuracy, sizes and CPU latency next to a student's."""
    teacher_logits = predict_logits(teacher, target.samples, runtime)
    test = target.rows("test")
    y = target.labels[test]
    teacher_acc = float((teacher_logits[test].argmax(1) == y).float().mean())
    runs = pd.DataFrame(run_jobs(train_student, [(r, target, teacher_logits, cfg, runtime)
                                                 for r in plan_students(cfg)], runtime, label="students"))
    student = make_student(cfg, len(target.classes))
    batch = target.samples[test[:cfg.latency_batch]]
    summary = {"teacher_accuracy": teacher_acc, "teacher_params": count_parameters(teacher),
               "student_params": count_parameters(student), "latency_batch": len(batch),
               "teacher_latency_ms": latency_ms(teacher, batch, cfg.latency_repeats),
               "student_latency_ms": latency_ms(student, batch, cfg.latency_repeats)}
    if cfg.omit_class is not None:
        k = target.classes.index(cfg.omit_class)
        summary["teacher_omitted_accuracy"] = float((teacher_logits[test][y == k].argmax(1) == k).float().mean())
    return runs, summary
