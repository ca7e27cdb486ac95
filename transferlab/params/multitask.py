"""The multi-task experiment (params.yaml section `multitask`)."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from transferlab.params.base import ConvergenceParams, Fraction, PositiveInt, Section


class SceneParams(Section):
    """Scenes of 0..max_objects task objects (digits standing in for road users) plus distractors."""

    seed: int = 0
    canvas_size: Annotated[int, Field(ge=32, le=128)] = 48
    # task name → the digit class drawn for it; other digits are distractors
    tasks: dict[str, str] = {"pedestrian": "2", "car": "3", "stop_sign": "5", "traffic_light": "7"}
    max_objects: Annotated[int, Field(ge=1, le=6)] = 4
    max_distractors: Annotated[int, Field(ge=0, le=4)] = 2
    digit_size: Annotated[list[PositiveInt], Field(min_length=2, max_length=2)] = [14, 20]
    clutter_strokes: Annotated[int, Field(ge=0, le=10)] = 2
    noise_std: Fraction = 0.05
    train_scenes: PositiveInt = 2000
    test_scenes: PositiveInt = 1000

    @model_validator(mode="after")
    def _check(self) -> SceneParams:
        if len(self.tasks) < 2:
            raise ValueError("tasks: multi-task learning needs at least two tasks")
        if len(set(self.tasks.values())) != len(self.tasks):
            raise ValueError(f"tasks: two tasks draw the same digit class ({self.tasks})")
        lo, hi = self.digit_size
        if not lo <= hi <= self.canvas_size // 2:
            raise ValueError(f"digit_size {self.digit_size} must be increasing and at most half the canvas")
        if self.max_objects + self.max_distractors > 9:
            raise ValueError("max_objects + max_distractors must fit the 3x3 grid of places (≤ 9)")
        return self


class MultitaskParams(Section):
    scenes: SceneParams = SceneParams()
    seeds: PositiveInt = 3
    train_scenes: PositiveInt = 1500  # scenes each network learns from (a seeded subset of the training scenes)
    model: str = "convnet_small"
    stem_stride: Annotated[int, Field(ge=1, le=4)] = 2  # scenes are large: a strided first block costs 4x less
    # shared network vs one network per task, at each body width; the last width runs the other experiments
    widths: Annotated[list[list[PositiveInt]], Field(min_length=1)] = [[2, 4, 8], [8, 16, 32]]
    # more widths for the shared network alone (no separate nets; +43 s each, measured)
    shared_widths: list[list[PositiveInt]] = []
    missing_fractions: Annotated[list[Fraction], Field(min_length=1)] = [0.0, 0.3, 0.6]
    few_labels_task: str = "pedestrian"  # the task that keeps only `few_labels` labelled scenes
    few_labels: PositiveInt = 100
    steps: PositiveInt = 1500  # the cap: each network stops earlier when it converges
    batch_size: PositiveInt = 64
    lr: Annotated[float, Field(gt=0, le=1)] = 3e-3
    weight_decay: Annotated[float, Field(ge=0, le=1)] = 1e-4
    metric: Literal["auroc", "ap", "accuracy"] = "auroc"  # what the claims are judged on (mean over tasks)
    convergence: ConvergenceParams = ConvergenceParams()  # `steps` is the cap

    @model_validator(mode="after")
    def _check(self) -> MultitaskParams:
        if self.few_labels_task not in self.scenes.tasks:
            raise ValueError(f"few_labels_task {self.few_labels_task!r} is not one of the tasks "
                             f"{list(self.scenes.tasks)}")
        if self.train_scenes > self.scenes.train_scenes:
            raise ValueError(f"train_scenes ({self.train_scenes}) exceeds scenes.train_scenes "
                             f"({self.scenes.train_scenes})")
        if self.few_labels >= self.train_scenes:
            raise ValueError(f"few_labels ({self.few_labels}) must be below train_scenes ({self.train_scenes})")
        return self
