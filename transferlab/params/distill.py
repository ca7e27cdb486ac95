"""Knowledge distillation (params.yaml section `distill`): a small student learns from a fine-tuned teacher."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from transferlab.params.base import ConvergenceParams, Fraction, PositiveInt, Section


class StudentParams(Section):
    name: str = "convnet_small"
    widths: Annotated[list[PositiveInt], Field(min_length=1)] = [4, 8, 16]
    stem_stride: Literal[1, 2] = 2  # 2: the first block halves the image, ~3x cheaper steps, no worse (measured)


class DistillParams(Section):
    teacher: str = "best"  # best: the fine-tuned model with the highest mean accuracy at the largest pool; or its name
    student: StudentParams = StudentParams()
    # transfer data: these target pool sizes (null: every pool size; must be among prepare.target.pool_sizes)
    per_class: Annotated[list[PositiveInt], Field(min_length=1)] | None = [5, 50]
    omit_class: str | None = "3"  # also distil from transfer data without this class (None: skip)
    temperature: Annotated[float, Field(gt=0, le=50)] = 4.0
    alpha: Fraction = 0.9  # weight of the soft (teacher) loss; 0 = hard labels only
    seeds: PositiveInt | None = 3  # null: finetune.seeds (each seed its own pool draw)
    # soft targets teach more slowly: at 200-400 steps the distilled student still lagged (measured)
    steps: PositiveInt = 1500  # the cap: each student stops earlier when it converges
    batch_size: PositiveInt = 64
    lr: Annotated[float, Field(gt=0, le=1)] = 3e-3
    weight_decay: Annotated[float, Field(ge=0, le=1)] = 1e-4
    latency_batch: PositiveInt = 256
    latency_repeats: PositiveInt = 10
    convergence: ConvergenceParams = ConvergenceParams()  # `steps` is the cap
