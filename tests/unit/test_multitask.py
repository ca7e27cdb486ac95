"""Multi-task learning: scenes with k-vector labels and their GX gate, missing labels, arms and their summary."""
import numpy as np
import pandas as pd
import pytest
import torch

from transferlab.data.prepared import metadata_table
from transferlab.experiments.multitask.experiment import FEW, MISSING, Arm, plan_arms, run_arm, training_targets
from transferlab.data.scenes import make_scenes, task_columns, task_labels
from transferlab.params import MultitaskParams, SceneParams
from transferlab.data.validation import build_derived_checks, run_checks

from ..conftest import tiny_digits as _digits


def test_scenes_have_k_vector_labels_and_pass_their_gx_suite():
    cfg = SceneParams(train_scenes=60, test_scenes=20)
    data, split = make_scenes(_digits(), cfg)
    assert data.images.shape == (80, 1, cfg.canvas_size, cfg.canvas_size) and (split == "test").sum() == 20
    table = metadata_table(data, split)
    y = task_labels(table, cfg.tasks)
    assert y.shape == (80, 4) and set(np.unique(y)) <= {0.0, 1.0}
    assert (y.sum(1) <= data.labels).all()  # several objects may share a type
    assert (y.sum(1) >= 2).any()  # several entries can be 1 at once
    checks = build_derived_checks("scenes", table, data.classes, cfg.canvas_size, task_columns(cfg.tasks))
    summary, failures = run_checks(checks, _tmp_docs(), 5)
    assert summary["success"], [f.describe() for f in failures]
    broken = table.copy()
    broken.loc[3, "task_car"] = 2
    _, failures = run_checks(build_derived_checks("scenes", broken, data.classes, cfg.canvas_size,
                                                  task_columns(cfg.tasks)),
                             _tmp_docs(), 5)
    assert any(f.column == "task_car" and "train:3" in f.rows for f in failures)


def _tmp_docs():
    import tempfile
    from pathlib import Path

    return Path(tempfile.mkdtemp()) / "docs"


def test_missing_labels_are_nested_and_the_few_label_task_keeps_only_its_first_rows():
    cfg = MultitaskParams(train_scenes=300, few_labels=20, missing_fractions=[0.0, 0.3, 0.6])
    tasks = list(cfg.scenes.tasks)
    labels = np.random.default_rng(0).integers(0, 2, (300, 4)).astype(np.float32)
    masked = {f: training_targets(labels, Arm(MISSING, "masked", (4,), f, 0), cfg, tasks) for f in (0.3, 0.6)}
    assert set(zip(*np.where(np.isnan(masked[0.3])))) <= set(zip(*np.where(np.isnan(masked[0.6]))))
    assert 0.2 < np.isnan(masked[0.3]).mean() < 0.4
    negative = training_targets(labels, Arm(MISSING, "as_negative", (4,), 0.6, 0), cfg, tasks)
    assert not np.isnan(negative).any() and (negative[np.isnan(masked[0.6])] == 0).all()
    few = training_targets(labels, Arm(FEW, "shared", (4,), 0.0, 0), cfg, tasks)
    j = tasks.index(cfg.few_labels_task)
    assert (~np.isnan(few[:, j])).sum() == 20 and not np.isnan(np.delete(few, j, 1)).any()
    arms = plan_arms(cfg)
    assert len(arms) == cfg.seeds * (2 * len(cfg.widths) + len(cfg.shared_widths) + 2 * 2 + 2)


def test_zero_missing_row_is_the_main_width_shared_network_even_with_extra_shared_widths():
    from transferlab.experiments.multitask.summary import arm_table

    cfg = MultitaskParams(widths=[[2, 4, 8], [8, 16, 32]], shared_widths=[[4, 8, 16]], missing_fractions=[0.0, 0.6],
                          seeds=2)
    auroc = {"2-4-8": 0.6, "8-16-32": 0.9, "4-8-16": 0.7}
    rows = [{"experiment": a.experiment, "arm": a.arm, "width": "-".join(map(str, a.width)), "missing": a.missing,
             "seed": a.seed, "params": 1, "task": t, "auroc": auroc["-".join(map(str, a.width))], "ap": 0.5,
             "accuracy": 0.5} for a in plan_arms(cfg) for t in cfg.scenes.tasks]
    table = arm_table(pd.DataFrame(rows), 0.95, cfg.few_labels_task)
    zero = table[(table["experiment"] == MISSING) & (table["missing"] == 0.0)]
    assert len(zero) == 2 and (zero["width"] == "8-16-32").all() and np.allclose(zero["auroc"], 0.9)


@pytest.mark.parametrize("arm", [Arm("width", "shared", (4, 8, 8), 0.0, 0), Arm("width", "separate", (4, 8, 8), 0.0, 0),
                                 Arm(FEW, "separate", (4, 8, 8), 0.0, 0)])
def test_multi_label_outputs_have_one_score_per_task(arm):
    cfg = MultitaskParams(scenes=SceneParams(train_scenes=40, test_scenes=10), train_scenes=40, few_labels=10,
                          steps=3, batch_size=8)
    data, split = make_scenes(_digits(), cfg.scenes)
    y = task_labels(metadata_table(data, split), cfg.scenes.tasks)
    train, test = np.flatnonzero(split == "train"), np.flatnonzero(split == "test")
    record, scores = run_arm(arm, torch.from_numpy(data.images), y, train, test, cfg, list(cfg.scenes.tasks))
    assert scores.shape == (10, 4)
    if arm.experiment == FEW:  # only the few-label task has its own network
        assert np.isfinite(scores[:, 0]).all() and np.isnan(scores[:, 1:]).all()
    else:
        assert np.isfinite(scores).all()
    assert record["params"] > 0
