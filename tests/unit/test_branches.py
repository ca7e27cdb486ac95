"""Pipeline vs end-to-end: shared subsets, the localiser, both branches on a smoke sweep, crossover, GX leakage."""
import numpy as np
import pandas as pd
import pytest
import torch

from transferlab.system.context import Runtime
from transferlab.data.canvas import box_hit, crop_digits, make_canvases
from transferlab.experiments.branches.compare import branch_claims, crossover, differences
from transferlab.params import AudioBranchParams, NetworkRun, VisionBranchParams
from transferlab.experiments.branches.sweep import Task, nested_subsets, run_branch
from transferlab.data.prepared import Prepared
from transferlab.system.errors import DataError

TINY_NET = NetworkRun(widths=[4, 8, 8], epochs=1.0, min_steps=3, max_steps=3, batch_size=8)


def test_nested_subsets_are_balanced_nested_and_seeded():
    labels = np.repeat(np.arange(5), 40)
    rows = np.arange(200)
    a = nested_subsets(labels, rows, [10, 50, 200], seed=0)
    assert np.bincount(labels[a[10]], minlength=5).tolist() == [2] * 5
    assert set(a[10]) <= set(a[50]) <= set(a[200]) and len(set(a[200])) == 200
    assert all(np.array_equal(a[n], nested_subsets(labels, rows, [10, 50, 200], 0)[n]) for n in a)
    assert not np.array_equal(a[50], nested_subsets(labels, rows, [50], 1)[50])
    with pytest.raises(DataError, match="exceeds"):
        nested_subsets(labels, rows, [201], 0)


def _digits(n_per_class=12, test_per_class=3):
    rng = np.random.default_rng(0)
    images = np.zeros((10 * n_per_class, 1, 28, 28), np.uint8)
    for i in range(len(images)):
        y, x = rng.integers(4, 12, 2)
        images[i, 0, y:y + 14, x:x + 10] = 255  # a solid bar: the "digit"
    labels = np.repeat(np.arange(10), n_per_class)
    split = np.array((["test"] * test_per_class + ["train"] * (n_per_class - test_per_class)) * 10)
    meta = pd.DataFrame({"id": [str(i) for i in range(len(labels))], "split": split, "label": labels})
    return Prepared(torch.from_numpy(images), torch.from_numpy(labels), [str(i) for i in range(10)], meta, None, None)


def test_canvases_keep_test_digits_apart_and_the_localiser_finds_clean_digits():
    cfg = VisionBranchParams(test_canvases=30, clutter_fragments=0, clutter_strokes=0, noise_std=0.0)
    data, split = make_canvases(_digits(), cfg)
    assert data.images.shape == (120, 1, 48, 48) and (split == "test").sum() == 30
    assert all(i.startswith(s) for i, s in zip(data.ids, split))
    crops, boxes = crop_digits(data.images, 28)
    assert crops.shape == (120, 1, 28, 28)
    hit = box_hit(boxes, np.array(data.extra["box_y"]), np.array(data.extra["box_x"]), np.array(data.extra["box_size"]))
    assert hit.all()  # nothing else on the canvas: the hand-built stage cannot miss


@pytest.mark.parametrize("branch", ["audio-pipeline", "audio-e2e", "vision-pipeline", "vision-e2e"])
def test_both_branches_train_on_a_smoke_sweep(branch):
    g = torch.Generator().manual_seed(0)
    n, classes = 60, 3
    labels = torch.arange(n) % classes
    if branch == "audio-pipeline":
        inputs = torch.randn(n, 12, generator=g) + labels[:, None].float()  # separable features
    elif branch == "audio-e2e":
        inputs = (torch.randn(n, 4000, generator=g) * 3000).to(torch.int16)
    else:
        inputs = torch.randint(0, 255, (n, 1, 28, 28), generator=g, dtype=torch.uint8)
    task = Task(inputs, labels, np.arange(45), np.arange(45, 60), classes)
    if branch.startswith("audio"):
        cfg = AudioBranchParams(sizes=[9, 30], seeds=2, e2e=TINY_NET.model_copy(update={"model": "m5"}))
    else:
        cfg = VisionBranchParams(sizes=[9, 30], seeds=2, pipeline=TINY_NET, e2e=TINY_NET)
    runs = run_branch(branch, task, cfg)
    assert sorted(zip(runs["size"], runs["seed"])) == [(9, 0), (9, 1), (30, 0), (30, 1)]
    assert runs["accuracy"].between(0, 1).all() and set(runs["branch"]) == {branch}
    if branch == "audio-pipeline":
        assert runs[runs["size"] == 30]["accuracy"].mean() > 0.6  # it really learns
    if branch == "audio-e2e":  # on two worker processes (the whole task sent once): the same runs
        again = run_branch(branch, task, cfg, Runtime(workers=2))
        pd.testing.assert_frame_equal(again.drop(columns="train_seconds"), runs.drop(columns="train_seconds"))


def _runs(pipeline, e2e, sizes=(100, 1000, 10000)):
    rows = []
    for kind, accs, name in (("pipeline", pipeline, "a-pipeline"), ("end-to-end", e2e, "a-e2e")):
        for size, acc in zip(sizes, accs):
            rows += [{"branch": name, "track": "audio", "kind": kind, "size": size, "seed": s,
                      "accuracy": acc + 0.01 * s} for s in range(3)]
    return pd.DataFrame(rows)


def test_crossover_is_found_and_judged():
    diff = differences(_runs([0.5, 0.6, 0.7], [0.3, 0.6, 0.9]), 0.95)
    x = crossover(diff)
    assert x is not None and 100 < x <= 1000
    verdicts = {c.key: c.verdict for c in branch_claims(diff, 0.01)}
    assert verdicts["audio_pipeline_wins_small"] == "holds" and verdicts["audio_e2e_wins_large"] == "holds"
    assert verdicts["audio_crossover"] == "holds"


def test_no_crossover_is_said_plainly():
    diff = differences(_runs([0.5, 0.6, 0.7], [0.3, 0.4, 0.5]), 0.95)
    assert crossover(diff) is None
    claims = {c.key: c for c in branch_claims(diff, 0.01)}
    assert claims["audio_e2e_wins_large"].verdict == "does not hold"
    assert "no crossover" in claims["audio_crossover"].evidence and claims["audio_crossover"].verdict == "does not hold"
