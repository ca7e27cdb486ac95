"""Wake-word scoring helpers shared by the sweep's evaluation and the ceiling detector (kept apart from
evaluate.py so the ceiling stage does not import, and re-run on, the fine-tuning sweep's code)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from transferlab.experiments.wakeword.metrics import frr_at_far


def frr_per_negative_kind(scores: np.ndarray, labels: np.ndarray, kinds: np.ndarray, far: float) -> dict[str, float]:
    """FRR at `far` against each kind of negative alone (all positives kept), keyed by kind."""
    out = {}
    for kind in sorted(set(kinds[labels == 0])):
        keep = (labels == 1) | (kinds == kind)
        out[kind] = frr_at_far(scores[keep], labels[keep], far)
    return out


def mean_clip_seconds(metadata: pd.DataFrame) -> float:
    return float(np.mean(metadata["duration_s"]))
