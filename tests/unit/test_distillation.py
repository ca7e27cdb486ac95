"""Knowledge distillation: the student runs it plans, their transfer data, and the teacher it picks."""
import pandas as pd
import pytest
import torch

from transferlab.experiments.distillation.students import StudentRun, pick_teacher, plan_students, train_student, transfer_rows
from transferlab.params import DistillParams

from ..conftest import tiny_digits as _digits


def test_students_hard_and_distilled_and_without_a_class():
    target = _digits()
    cfg = DistillParams(per_class=[1, 5], seeds=2, steps=3, batch_size=8, student={"widths": [4, 8, 8]})
    runs = plan_students(cfg)
    assert len(runs) == 2 * 2 * 2 + 2 * 2
    rows = transfer_rows(target, StudentRun(5, 0, "hard", "3"))
    assert len(rows) == 45 and 3 not in set(target.labels[rows].tolist())
    teacher_logits = torch.randn(len(target.labels), 10)
    record = train_student(StudentRun(5, 0, "distilled", "3"), target, teacher_logits, cfg)
    assert 0 <= record["accuracy"] <= 1 and 0 <= record["omitted_accuracy"] <= 1 and record["transfer_images"] == 45


def test_the_teacher_is_the_best_strategy_at_the_largest_pool(tmp_path):
    runs = pd.DataFrame({"backbone": ["src-full"] * 6, "strategy": ["head", "full", "scratch"] * 2,
                         "per_class": [300] * 3 + [5] * 3, "test_accuracy": [0.9, 0.95, 0.93, 0.5, 0.2, 0.1]})
    assert pick_teacher(runs, tmp_path, "best") == tmp_path / "src-full-full-n300"
    with pytest.raises(FileNotFoundError, match="not a fine-tuned model"):
        pick_teacher(runs, tmp_path, "nonexistent")
