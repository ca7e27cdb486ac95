"""What a fine-tuning sweep writes and how its runs are named: the contract between the sweep (finetune.py)
and what reads its outputs (evaluation, the audio evaluation, distillation, promotion), so those need none of
the training code."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from transferlab.params.base import strategy_label

PREDICTIONS_FILE, RUNS_FILE = "predictions.safetensors", "runs.csv"


@dataclass(frozen=True)
class RunSpec:
    backbone: str  # which pre-trained model ("src-full", "src-300", an imported one) — scratch ignores its weights
    strategy: str  # the schema's name
    per_class: int
    seed: int
    alpha: float | None = None  # wise_ft's mixing coefficient
    block: str | None = None  # surgical's block

    @property
    def label(self) -> str:
        """The runs table's strategy: the schema's name, or e.g. "wise_ft@0.5", "surgical@first" (each variant
        is its own arm)."""
        return strategy_label(self.strategy, self.alpha if self.alpha is not None else self.block)

    @property
    def recipe(self) -> str:
        """What fitting trains: the strategy, with surgical's block (wise_ft's α only mixes after training)."""
        return self.label if self.block is not None else self.strategy

    @property
    def run_id(self) -> str:
        return f"{self.backbone}/{self.label}/n{self.per_class}/s{self.seed}"

    @property
    def model_name(self) -> str:
        return f"{self.backbone}-{self.label}-n{self.per_class}"


def best_model_dir(runs: pd.DataFrame, models_dir: Path, metric: str = "test_accuracy") -> Path:
    """The saved (seed-0) model of the best main-backbone strategy at the largest pool, by mean `metric` over
    seeds (higher is better; scratch included: the best model wins, whatever made it)."""
    main = runs["backbone"].iloc[0]
    largest = runs[(runs["backbone"] == main) & (runs["per_class"] == runs["per_class"].max())]
    best = largest.groupby("strategy")[metric].mean().idxmax()
    return models_dir / RunSpec(main, best, int(largest["per_class"].iloc[0]), 0).model_name
