"""Transferability scores (params.yaml section `transferability`): rank the candidate backbones from frozen
features before fine-tuning, then check that ranking against the fine-tuning sweep."""
from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field

from transferlab.params.base import Fraction, PositiveInt, Section

Score = Literal["logme", "leep", "nce", "h_score"]
SCORES: tuple[str, ...] = get_args(Score)  # the one spelling of the score names (columns of scores.csv)


class TransferabilityParams(Section):
    scores: Annotated[list[Score], Field(min_length=1)] = list(SCORES)
    # H-score inverts the feature covariance, which is singular when features outnumber images (256 features,
    # 10 images at 1/class): Ledoit-Wolf shrinkage ("auto", Ibrahim et al. 2022) keeps it stable; null is the
    # paper's pseudo-inverse, a fixed λ in [0, 1] shrinks by that much.
    h_score_shrinkage: Literal["auto"] | Fraction | None = "auto"
    layer_cuts: bool = True  # also score the main backbone's features after each body block
    random_seed: int = 0  # weights of the random-init candidate (the main backbone's architecture)
    batch_size: PositiveInt = 256  # images per forward pass when extracting features
    bootstrap: PositiveInt = 1000  # seed resamples for the CI of Kendall's τ (score vs fine-tuned accuracy)
