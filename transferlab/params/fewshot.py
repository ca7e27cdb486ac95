"""Few-shot learning (params.yaml section `fewshot`): a prototypical network meta-trained on source episodes."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from transferlab.params.base import ModelParams, PositiveInt, Section


class FewshotParams(Section):
    seed: int = 0
    # pretrained: episodic training starts from the supervised backbone (its architecture); scratch: `model`
    init: Literal["pretrained", "scratch"] = "pretrained"
    model: ModelParams = ModelParams(name="convnet", widths=[16, 32, 128], dropout=0.0)
    train_ways: Annotated[int, Field(ge=2)] = 10  # more ways in training than in testing helps (Snell et al.)
    train_shots: PositiveInt = 5
    train_queries: PositiveInt = 5
    episodes: PositiveInt = 100  # training episodes (= optimiser steps)
    lr: Annotated[float, Field(gt=0, le=1)] = 2e-3
    weight_decay: Annotated[float, Field(ge=0, le=1)] = 1e-4
    ways: Annotated[int, Field(ge=2)] = 5
    shots: Annotated[list[PositiveInt], Field(min_length=1)] = [1, 5]
    queries: PositiveInt = 15
    test_episodes: Annotated[int, Field(ge=1)] = 200
