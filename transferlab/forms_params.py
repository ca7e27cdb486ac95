"""Parameters of the other forms of transfer: distillation and few-shot learning (no torch imported here)."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .schema import Fraction, ModelParams, PositiveInt, _Section


class StudentParams(_Section):
    name: str = "convnet_small"
    widths: Annotated[list[PositiveInt], Field(min_length=1)] = [4, 8, 16]
    stem_stride: Literal[1, 2] = 1  # 2: the first block halves the image (convnet_small), ~3x cheaper steps


class DistillParams(_Section):
    teacher: str = "best"  # best: the fine-tuned model with the highest mean accuracy at the largest pool; or its name
    student: StudentParams = StudentParams()
    # transfer data: these target pool sizes (None: every pool size)
    per_class: Annotated[list[PositiveInt], Field(min_length=1)] | None = None
    omit_class: str | None = "3"  # also distil from transfer data without this class (None: skip)
    temperature: Annotated[float, Field(gt=0, le=50)] = 4.0
    alpha: Fraction = 0.9  # weight of the soft (teacher) loss; 0 = hard labels only
    seeds: PositiveInt | None = None  # None: finetune.seeds (each seed its own pool draw)
    steps: PositiveInt = 500
    batch_size: PositiveInt = 64
    lr: Annotated[float, Field(gt=0, le=1)] = 3e-3
    weight_decay: Annotated[float, Field(ge=0, le=1)] = 1e-4
    latency_batch: PositiveInt = 256
    latency_repeats: PositiveInt = 10


class FewshotParams(_Section):
    seed: int = 0
    # pretrained: episodic training starts from the supervised backbone (its architecture); scratch: `model`
    init: Literal["pretrained", "scratch"] = "pretrained"
    model: ModelParams = ModelParams(name="convnet", widths=[32, 64, 256], dropout=0.0)
    train_ways: Annotated[int, Field(ge=2)] = 10  # more ways in training than in testing helps (Snell et al.)
    train_shots: PositiveInt = 5
    train_queries: PositiveInt = 5
    episodes: PositiveInt = 150  # training episodes (= optimiser steps)
    lr: Annotated[float, Field(gt=0, le=1)] = 2e-3
    weight_decay: Annotated[float, Field(ge=0, le=1)] = 1e-4
    ways: Annotated[int, Field(ge=2)] = 5
    shots: Annotated[list[PositiveInt], Field(min_length=1)] = [1, 5]
    queries: PositiveInt = 15
    test_episodes: Annotated[int, Field(ge=1)] = 600
