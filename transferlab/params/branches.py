"""The pipeline-vs-end-to-end sweeps (params.yaml section `branches`)."""
from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from transferlab.params.base import ConvergenceParams, PositiveInt, Section

Sizes = Annotated[list[PositiveInt], Field(min_length=1)]


class NetworkRun(Section):
    """How one branch's network is trained at each training-set size."""

    model: str = "convnet_small"
    widths: Annotated[list[PositiveInt], Field(min_length=1)] = [16, 32, 64]
    stem_stride: Annotated[int, Field(ge=1, le=4)] = 1  # convnets: 2 halves the resolution of the first block
    epochs: Annotated[float, Field(gt=0)] = 4.0  # passes over the training subset ...
    min_steps: PositiveInt = 300  # ... but at least this many and at most max_steps mini-batches
    max_steps: PositiveInt = 1200
    batch_size: PositiveInt = 64
    lr: Annotated[float, Field(gt=0, le=1)] = 3e-3
    weight_decay: Annotated[float, Field(ge=0, le=1)] = 1e-4
    augment: bool = False
    convergence: ConvergenceParams = ConvergenceParams()  # the epochs/min/max rule above is the cap


class AudioBranchParams(Section):
    # up to the whole A-train set (14,400 clips); the calibration's crossover lies between the first two
    sizes: Sizes = [300, 1000, 4000]
    seeds: PositiveInt = 3
    n_mfcc: Annotated[int, Field(ge=4, le=64)] = 20
    segments: Annotated[int, Field(ge=1, le=16)] = 4  # pooled over the whole speech region and over this many parts
    l2: Annotated[float, Field(gt=0)] = 1.0  # inverse regularisation (C) of the logistic regression
    # M5 learns slowly: at 9,000 clips 350 steps gave 31 %, 700 49 %, 1,400 66 % (measured, one seed)
    # M5 sits on a plateau for its first hundred steps: checked every 50 steps, not every epoch of a small set
    e2e: NetworkRun = NetworkRun(model="m5", widths=[16, 32], epochs=30.0, min_steps=300, max_steps=1500,
                                 convergence=ConvergenceParams(min_check_steps=50))


class VisionBranchParams(Section):
    seed: int = 0
    canvas_size: Annotated[int, Field(ge=32, le=128)] = 48
    digit_size: Annotated[list[PositiveInt], Field(min_length=2, max_length=2)] = [16, 30]
    clutter_fragments: Annotated[int, Field(ge=0, le=10)] = 3  # pieces of other digits
    clutter_strokes: Annotated[int, Field(ge=0, le=10)] = 2
    noise_std: Annotated[float, Field(ge=0, le=1)] = 0.05
    test_canvases: PositiveInt = 300
    sizes: Sizes = [100, 400, 2000]
    seeds: PositiveInt = 3
    crop_size: Annotated[int, Field(ge=8, le=64)] = 28
    pipeline: NetworkRun = NetworkRun(widths=[16, 32, 64], epochs=40.0, min_steps=200, max_steps=1500, augment=True)
    # stride-2 stem on the 48 px canvas: the cost of the 28 px crop network instead of 4x that
    e2e: NetworkRun = NetworkRun(widths=[16, 32, 64], stem_stride=2, epochs=40.0, min_steps=200, max_steps=1500,
                                 augment=True)

    @model_validator(mode="after")
    def _check(self) -> VisionBranchParams:
        lo, hi = self.digit_size
        if not lo <= hi <= self.canvas_size:
            raise ValueError(f"digit_size {self.digit_size} must be increasing and fit the {self.canvas_size}px canvas")
        return self


class CompareParams(Section):
    confidence: Annotated[float, Field(gt=0.5, lt=1)] = 0.95


class BranchesParams(Section):
    audio: AudioBranchParams = AudioBranchParams()
    vision: VisionBranchParams = VisionBranchParams()
    compare: CompareParams = CompareParams()
