"""Parameter sections shared by every track (the one schema is assembled in params.py)."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Strategy = Literal["scratch", "head", "last_k", "full", "discriminative"]
PositiveInt = Annotated[int, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ModelParams(_Section):
    name: str = "convnet"
    widths: Annotated[list[PositiveInt], Field(min_length=1)] = [32, 64, 256]
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1


class TrainingParams(_Section):
    """Pre-training on the source task; shared by both tracks."""

    seed: int = 0
    model: ModelParams = ModelParams()
    epochs: PositiveInt = 4
    batch_size: PositiveInt = 128
    lr: Annotated[float, Field(gt=0, le=1)] = 3e-3
    weight_decay: Annotated[float, Field(ge=0, le=1)] = 5e-4
    label_smoothing: Annotated[float, Field(ge=0, lt=1)] = 0.0
    augment: bool = False


class PretrainParams(TrainingParams):
    small_source_size: PositiveInt = 300  # the ablation: fewer source images than target's largest pool


class TransferParams(_Section):
    """Fine-tuning on the target task; shared by both tracks."""

    strategies: Annotated[list[Strategy], Field(min_length=1)] = ["scratch", "head", "last_k", "full", "discriminative"]
    seeds: PositiveInt = 3
    last_k: PositiveInt = 1
    steps: PositiveInt = 80
    steps_per_example: Annotated[float, Field(ge=0)] = 0.2  # extra steps per labelled example
    max_steps: PositiveInt = 128
    batch_size: PositiveInt = 32
    lr: Annotated[float, Field(gt=0, le=1)] = 3e-3
    head_lr: Annotated[float, Field(gt=0, le=1)] = 1e-2
    body_lr_scale: Annotated[float, Field(gt=0, le=1)] = 0.3  # discriminative: body LR relative to head LR
    layer_decay: Annotated[float, Field(gt=0, le=1)] = 0.5  # discriminative: each earlier block gets this factor
    weight_decay: Annotated[float, Field(ge=0, le=1)] = 1e-4
    augment: bool = True
