"""Multi-task learning, distillation and few-shot learning: losses, shapes, splits, scenes and their GX gate."""
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from transferlab.data.prepared import Prepared, metadata_table
from transferlab.distillation import StudentRun, pick_teacher, plan_students, train_student, transfer_rows
from transferlab.fewshot import episode_accuracies, episode_sampler, pool_accuracies, sample_episode
from transferlab.params import DistillParams, FewshotParams
from transferlab.multitask.experiment import FEW, MISSING, Arm, plan_arms, run_arm, training_targets
from transferlab.params import MultitaskParams, SceneParams
from transferlab.multitask.scenes import make_scenes, task_columns, task_labels
from transferlab.objectives import distillation, masked_bce, prototypical
from transferlab.validation import build_derived_checks, run_checks


def test_a_masked_entry_contributes_zero_gradient():
    logits = torch.randn(4, 3, requires_grad=True)
    targets = torch.tensor([[1.0, float("nan"), 0.0], [0.0, 1.0, float("nan")], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    loss, _ = masked_bce(logits, targets)
    loss.backward()
    assert logits.grad[0, 1] == 0 and logits.grad[1, 2] == 0
    labelled = ~torch.isnan(targets)
    assert (logits.grad[labelled] != 0).all()
    # The loss is torch's own BCE-with-logits summed over labelled entries, divided by the number of examples.
    expected = F.binary_cross_entropy_with_logits(logits[labelled], targets[labelled], reduction="sum") / 4
    assert torch.allclose(loss, expected)
    # A missing label changes nothing whatever it would have been.
    other = targets.clone()
    other[0, 1] = 1.0
    assert not torch.allclose(masked_bce(logits, other)[0], loss)
    assert torch.allclose(masked_bce(logits, targets)[0], loss)


def test_distillation_loss_is_the_hard_label_loss_when_alpha_selects_hard_labels():
    g = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(8, 10, generator=g), torch.randn(8, 10, generator=g)
    labels = torch.randint(0, 10, (8,), generator=g)
    hard, _ = distillation(temperature=4.0, alpha=0.0)(student, (labels, teacher))
    assert torch.allclose(hard, F.cross_entropy(student, labels))
    soft, _ = distillation(temperature=4.0, alpha=1.0)(student, (labels, teacher))
    kl = F.kl_div(F.log_softmax(student / 4, 1), F.softmax(teacher / 4, 1), reduction="batchmean") * 16
    assert torch.allclose(soft, kl, atol=1e-6)
    mixed, _ = distillation(temperature=4.0, alpha=0.3)(student, (labels, teacher))
    assert torch.allclose(mixed, 0.3 * kl + 0.7 * hard, atol=1e-6)
    # A student that already matches the teacher has nothing left to learn from it.
    same = teacher.clone().requires_grad_(True)
    distillation(4.0, 1.0)(same, (labels, teacher))[0].backward()
    assert same.grad.abs().max() < 1e-6


def test_episodes_never_contain_a_class_outside_their_split():
    labels = np.repeat(np.arange(20), 30)
    rows = np.flatnonzero(labels < 12)  # the split: classes 0..11 only
    rng = np.random.default_rng(0)
    for _ in range(200):
        picked, rel, query = sample_episode(labels, rows, ways=5, shots=2, queries=3, rng=rng)
        assert set(labels[picked]) <= set(range(12)) and set(picked) <= set(rows)
        assert len(set(labels[picked])) == 5 and len(set(picked)) == len(picked)  # no example twice
        assert (np.bincount(rel) == 5).all() and query.sum() == 15
        # Episode classes map one-to-one onto real classes.
        assert all(len(set(labels[picked][rel == i])) == 1 for i in range(5))
    sampler = episode_sampler(labels, rows, FewshotParams(train_ways=6, train_shots=1, train_queries=2))
    for step in range(50):
        idx, (rel, query) = sampler(step, torch.Generator())
        assert set(labels[idx.numpy()]) <= set(range(12)) and int(rel.max()) == 5
    with pytest.raises(ValueError, match="classes have"):
        sample_episode(labels, rows, ways=13, shots=1, queries=1, rng=rng)


def test_prototypical_loss_prefers_separated_embeddings():
    rel = torch.tensor([0, 0, 1, 1, 0, 1])
    query = torch.tensor([0, 0, 0, 0, 1, 1])
    good = torch.tensor([[0.0, 0], [0.1, 0], [5, 5], [5.1, 5], [0.05, 0], [5, 5.1]])
    bad = good[[0, 2, 1, 3, 5, 4]]
    loss_good, acc_good = prototypical(good, (rel, query))
    loss_bad, _ = prototypical(bad, (rel, query))
    assert acc_good == 1.0 and loss_good < loss_bad


def _digits(per_class=20, test_per_class=5, size=28):
    rng = np.random.default_rng(0)
    n = 10 * per_class
    images = np.zeros((n, 1, size, size), np.uint8)
    labels = np.repeat(np.arange(10), per_class)
    for i, c in enumerate(labels):  # class c: a bar at a class-specific column
        images[i, 0, 6:22, 2 + 2 * c:5 + 2 * c] = 200 + rng.integers(0, 55)
    split = np.array((["test"] * test_per_class + ["train"] * (per_class - test_per_class)) * 10)
    meta = pd.DataFrame({"id": [f"d{i}" for i in range(n)], "split": split, "label": labels})
    pools = pd.DataFrame([{"draw": d, "per_class": k, "row": r} for d in range(2) for k in (1, 5)
                          for c in range(10) for r in np.random.default_rng([d, c]).permutation(
                              np.flatnonzero((labels == c) & (split == "train")))[:k]])
    return Prepared(torch.from_numpy(images), torch.from_numpy(labels), [str(i) for i in range(10)], meta, pools, None)


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
    from transferlab.multitask.summary import arm_table

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
    runs = pd.DataFrame({"backbone": ["full"] * 6, "strategy": ["head", "full", "scratch"] * 2,
                         "per_class": [300] * 3 + [5] * 3, "test_accuracy": [0.9, 0.95, 0.93, 0.5, 0.2, 0.1]})
    assert pick_teacher(runs, tmp_path, "best") == tmp_path / "full-full-n300"
    with pytest.raises(FileNotFoundError, match="not a fine-tuned model"):
        pick_teacher(runs, tmp_path, "nonexistent")


def test_prototypes_on_the_finetuning_pools_and_on_episodes():
    target = _digits()
    # Features that separate the classes perfectly: one-hot of the label.
    features = {"oracle": F.one_hot(target.labels, 10).float(), "noise": torch.randn(len(target.labels), 10)}
    pools = pool_accuracies(features, target, [1, 5], draws=2)
    assert len(pools) == 2 * 2 * 2
    assert (pools[pools["method"] == "oracle"]["accuracy"] == 1.0).all()
    episodes = episode_accuracies(features, target.labels.numpy(), target.rows("test"), 5, 1, 4, 20, seed=0)
    assert len(episodes) == 40 and (episodes[episodes["method"] == "oracle"]["accuracy"] == 1.0).all()
