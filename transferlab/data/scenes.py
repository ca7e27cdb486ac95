"""The course's self-driving example on digits: scenes with several objects, a K-vector label per scene.

Each task digit class stands for one object type (pedestrian, car, stop sign, traffic light); digits of
other classes are distractors. A scene's label says which object types appear (several can at once)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from transferlab.data.canvas import draw_strokes, resize_square
from transferlab.data.prepared import Prepared
from transferlab.data.sources import DataError, ImageSet
from transferlab.params import SceneParams

TASK_PREFIX = "task_"  # metadata column per task: 1 when that object type is in the scene


def task_columns(tasks: dict[str, str]) -> list[str]:
    return [TASK_PREFIX + name for name in tasks]


def _draw_scene(objects: list[np.ndarray], distractors: list[np.ndarray], cfg: SceneParams,
                rng: np.random.Generator) -> np.ndarray:
    c = cfg.canvas_size
    canvas = np.zeros((c, c), np.float32)
    cell = c / 3
    places = rng.permutation(9)[:len(objects) + len(distractors)]  # a 3x3 grid keeps objects apart
    for digit, place in zip(objects + distractors, places):
        size = int(rng.integers(cfg.digit_size[0], cfg.digit_size[1] + 1))
        cy, cx = (place // 3 + 0.5) * cell, (place % 3 + 0.5) * cell
        y = int(np.clip(round(cy - size / 2 + rng.uniform(-2, 2)), 0, c - size))
        x = int(np.clip(round(cx - size / 2 + rng.uniform(-2, 2)), 0, c - size))
        canvas[y:y + size, x:x + size] = np.maximum(canvas[y:y + size, x:x + size], resize_square(digit, size))
    draw_strokes(canvas, cfg.clutter_strokes, rng)
    canvas += rng.normal(0, cfg.noise_std * 255, canvas.shape)
    return np.clip(canvas, 0, 255).round().astype(np.uint8)


def make_scenes(digits: Prepared, cfg: SceneParams) -> tuple[ImageSet, np.ndarray]:
    """Training scenes from training digits, test scenes from test digits (no digit crosses splits).

    The stored label is the number of task objects; the per-task presence labels are metadata columns."""
    missing = [d for d in cfg.tasks.values() if d not in digits.classes]
    if missing:
        raise DataError(f"multitask.scenes.tasks: digit class(es) {missing} not in the target classes {digits.classes}")
    images, labels = digits.samples[:, 0].numpy(), digits.labels.numpy()
    task_ids = [digits.classes.index(d) for d in cfg.tasks.values()]
    k = len(task_ids)
    scenes, presence, counts, split, ids = [], [], [], [], []
    for name, total, salt in (("train", cfg.train_scenes, 71), ("test", cfg.test_scenes, 72)):
        rows = digits.rows(name)
        by_task = [rows[labels[rows] == t] for t in task_ids]
        others = rows[~np.isin(labels[rows], task_ids)]
        if any(len(r) == 0 for r in by_task) or (cfg.max_distractors and len(others) == 0):
            raise DataError(f"{digits.root}: the {name} split lacks digits of some task or distractor class")
        rng = np.random.default_rng([cfg.seed, salt])
        for i in range(total):
            types = rng.integers(0, k, int(rng.integers(0, cfg.max_objects + 1)))
            objects = [images[rng.choice(by_task[t])] for t in types]
            distractors = [images[j] for j in rng.choice(others, int(rng.integers(0, cfg.max_distractors + 1)))]
            scenes.append(_draw_scene(objects, distractors, cfg, rng))
            presence.append(np.isin(np.arange(k), types).astype(np.int64))
            counts.append(len(types))
            split.append(name)
            ids.append(f"{name}:{i}")
    presence_arr = np.stack(presence)
    extra = {col: presence_arr[:, j].tolist() for j, col in enumerate(task_columns(cfg.tasks))}
    classes = [str(n) for n in range(cfg.max_objects + 1)]  # label: how many task objects
    return ImageSet(np.stack(scenes)[:, None], np.array(counts, np.int64), classes, ids, extra), np.array(split, object)


def task_labels(metadata: pd.DataFrame, tasks: dict[str, str]) -> np.ndarray:
    """(N, K) float presence labels from the scenes' metadata."""
    return metadata[task_columns(tasks)].to_numpy(dtype=np.float32)
