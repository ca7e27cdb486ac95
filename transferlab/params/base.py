"""Sections every track shares: the Section base class, value types, training and transfer settings."""
from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

Strategy = Literal["scratch", "head", "last_k", "full", "discriminative"]
# The one spelling of the strategy names; transfer.py and the defaults below read it from here.
STRATEGIES: tuple[str, ...] = get_args(Strategy)
# How much of the pre-trained body each strategy retrains: the claims compare these groups, so a new strategy
# joins one of them here and nowhere else.
SHALLOW_STRATEGIES: tuple[str, ...] = ("head", "last_k")  # body (mostly) frozen
DEEP_STRATEGIES: tuple[str, ...] = ("full", "discriminative")  # every layer retrained
TRANSFER_STRATEGIES: tuple[str, ...] = SHALLOW_STRATEGIES + DEEP_STRATEGIES  # all but scratch
PositiveInt = Annotated[int, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]


class Section(BaseModel):
    """One mapping of params.yaml: unknown keys and wrong types fail; values never change after loading."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ModelParams(Section):
    name: str = "convnet"
    widths: Annotated[list[PositiveInt], Field(min_length=1)] = [32, 64, 256]
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1


class TrainingParams(Section):
    """Pre-training on the source task; shared by both tracks (each subclasses it for its own defaults)."""

    seed: int = 0
    model: ModelParams = ModelParams()
    epochs: PositiveInt = 4
    batch_size: PositiveInt = 128
    lr: Annotated[float, Field(gt=0, le=1)] = 3e-3
    weight_decay: Annotated[float, Field(ge=0, le=1)] = 5e-4
    label_smoothing: Annotated[float, Field(ge=0, lt=1)] = 0.0
    augment: bool = False


class TransferParams(Section):
    """Fine-tuning on the target task; shared by both tracks (each subclasses it for its own defaults)."""

    strategies: Annotated[list[Strategy], Field(min_length=1)] = list(STRATEGIES)
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


class RuntimeParams(Section):
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: Annotated[int, Field(ge=0)] = 0  # 0: one per core, capped at 8
    workers: Annotated[int, Field(ge=0)] = 0  # fine-tuning processes (1 thread each) on CPU; 0: one per core


class EvaluateParams(Section):
    confidence: Annotated[float, Field(gt=0.5, lt=1)] = 0.95
    focus_per_class: PositiveInt = 10  # which pool size the confusion-matrix plot shows


class ReportParams(Section):
    title: str = "transferlab: does pre-training on printed letters help read handwritten digits?"
    min_effect: Annotated[float, Field(ge=0, le=1)] = 0.01  # differences below this count as "no difference"
