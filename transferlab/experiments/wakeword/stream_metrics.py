"""Wake-word metrics as the field reports them: false accepts per hour of continuous negative audio and the
false-reject rate of words embedded at known times, read from the detector's own score tracks
(streaming.detect_stream) at every threshold; the threshold for a target rate is chosen on a validation stream."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from transferlab.experiments.wakeword.streaming import Detection, pick_detections

MATCH_S = 0.5  # a detection within this of a word's centre finds it (openWakeWord and Picovoice allow ~0.5-1 s)


@dataclass(frozen=True)
class Track:
    """One stream's window times (s) and smoothed scores; `words`: the centres (s) of the wake words in it."""

    times: np.ndarray
    scores: np.ndarray
    words: np.ndarray

    @property
    def hours(self) -> float:
        step = float(np.median(np.diff(self.times))) if len(self.times) > 1 else 0.0
        return (float(self.times[-1] - self.times[0]) + step) / 3600 if len(self.times) else 0.0


def matched(detections: list[Detection], words: np.ndarray, within: float = MATCH_S) -> tuple[int, int]:
    """(words found, detections that found none): each word is matched to at most one detection."""
    times = sorted(d.time_s for d in detections)
    used, found = set(), 0
    for w in np.sort(words):
        near = [i for i, t in enumerate(times) if i not in used and abs(t - w) <= within]
        if near:
            used.add(min(near, key=lambda i: abs(times[i] - w)))
            found += 1
    return found, len(times) - len(used)


def det_table(negatives: list[Track], positives: list[Track], thresholds: np.ndarray, refractory_s: float,
              within: float = MATCH_S) -> pd.DataFrame:
    """Per threshold: false accepts per hour (every detection in the negative streams, and the stray ones in the
    positive streams, over all their hours) and the false-reject rate of the embedded words."""
    hours = sum(t.hours for t in negatives) + sum(t.hours for t in positives)
    words = sum(len(t.words) for t in positives)
    if hours <= 0 or words == 0:
        raise ValueError(f"a DET table needs negative audio and embedded words ({hours:.3f} h, {words} words)")
    rows = []
    for th in thresholds:
        false = sum(len(pick_detections(t.times, t.scores, float(th), refractory_s)) for t in negatives)
        found = 0
        for t in positives:
            f, stray = matched(pick_detections(t.times, t.scores, float(th), refractory_s), t.words, within)
            found, false = found + f, false + stray
        rows.append({"threshold": float(th), "false_accepts": false, "hours": hours,
                     "fa_per_hour": false / hours, "frr": 1 - found / words, "words": words})
    return pd.DataFrame(rows)


def threshold_for_rate(table: pd.DataFrame, fa_per_hour: float) -> float | None:
    """The lowest threshold whose false-accept rate is at most the target (the fewest misses that keep it); None
    when even the highest threshold tried exceeds it."""
    ok = table[table["fa_per_hour"] <= fa_per_hour]
    return float(ok["threshold"].min()) if len(ok) else None


def frr_at_rate(table: pd.DataFrame, fa_per_hour: float) -> float:
    """FRR at the lowest threshold whose rate is at most the target: the DET curve read at that rate (1.0, every
    word missed, when no threshold tried gets there)."""
    th = threshold_for_rate(table, fa_per_hour)
    return 1.0 if th is None else float(table.loc[table["threshold"] == th, "frr"].iloc[0])


def thresholds_between(scores: list[np.ndarray], n: int = 200) -> np.ndarray:
    """Candidate thresholds: n quantiles of the pooled scores, plus the ends (every change in the DET curve
    happens at a score; quantiles keep the table small on hours of audio)."""
    pooled = np.concatenate([s.ravel() for s in scores]) if scores else np.array([0.5])
    return np.unique(np.concatenate([np.quantile(pooled, np.linspace(0, 1, n)), [0.0, 1.0 + 1e-6]]))
