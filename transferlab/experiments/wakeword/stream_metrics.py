"""Wake-word metrics as the field reports them: false accepts per hour of continuous negative audio and the
false-reject rate of words embedded at known times, read from the detector's own score tracks
(streaming.detect_stream) at every threshold; the threshold for a target rate is chosen on a validation stream."""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass

import numpy as np
import pandas as pd

from transferlab.experiments.wakeword.streaming import Detection, fire_indices, pick_detections, refractory_ends

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
    """(words found, detections that found none): each word is matched to at most one detection, the nearest
    unused one within `within` seconds."""
    times = sorted(d.time_s for d in detections)
    used, found = [False] * len(times), 0
    for w in np.sort(words):
        best = None
        for i in range(bisect_left(times, w - within), bisect_right(times, w + within)):
            if not used[i] and (best is None or abs(times[i] - w) < abs(times[best] - w)):
                best = i
        if best is not None:
            used[best], found = True, found + 1
    return found, len(times) - sum(used)


def false_accepts(track: Track, threshold: float, refractory_s: float, limit: int | None = None,
                  ends: np.ndarray | None = None) -> int:
    """Detections in a negative track (every one is false), counting stops at `limit`."""
    return len(fire_indices(track.times, track.scores, threshold, refractory_s, limit, ends))


def fa_table(negatives: list[Track], thresholds: np.ndarray, refractory_s: float,
             max_per_hour: float = 1000.0) -> pd.DataFrame:
    """Per threshold: false accepts per hour of the negative tracks. Counting stops past `max_per_hour` (`capped`:
    the rate is at least that): no one ships a detector that wakes a thousand times an hour."""
    hours = sum(t.hours for t in negatives)
    if hours <= 0:
        raise ValueError("false accepts per hour need negative audio (0 h given)")
    limit = int(np.ceil(max_per_hour * hours)) + 1
    ends = [refractory_ends(t.times, refractory_s) for t in negatives]
    rows = []
    for th in thresholds:
        false = sum(false_accepts(t, float(th), refractory_s, limit, e) for t, e in zip(negatives, ends))
        rows.append({"threshold": float(th), "false_accepts": false, "hours": hours, "fa_per_hour": false / hours,
                     "capped": false >= limit})
    return pd.DataFrame(rows)


def det_table(negatives: list[Track], positives: list[Track], thresholds: np.ndarray, refractory_s: float,
              within: float = MATCH_S, max_per_hour: float = 1000.0) -> pd.DataFrame:
    """Per threshold: false accepts per hour (every detection in the negative streams, and the stray ones in the
    positive streams, over all their hours) and the false-reject rate of the embedded words. Counting in the
    negative streams stops past `max_per_hour` (`capped`, as fa_table)."""
    hours = sum(t.hours for t in negatives) + sum(t.hours for t in positives)
    words = sum(len(t.words) for t in positives)
    if hours <= 0 or words == 0:
        raise ValueError(f"a DET table needs negative audio and embedded words ({hours:.3f} h, {words} words)")
    limit = int(np.ceil(max_per_hour * hours)) + 1
    neg_ends = [refractory_ends(t.times, refractory_s) for t in negatives]
    pos_ends = [refractory_ends(t.times, refractory_s) for t in positives]
    rows = []
    for th in thresholds:
        false = sum(false_accepts(t, float(th), refractory_s, limit, e) for t, e in zip(negatives, neg_ends))
        capped = false >= limit
        found = 0
        for t, e in zip(positives, pos_ends):
            f, stray = matched(pick_detections(t.times, t.scores, float(th), refractory_s, e), t.words, within)
            found, false = found + f, false + stray
        rows.append({"threshold": float(th), "false_accepts": false, "hours": hours,
                     "fa_per_hour": false / hours, "capped": capped, "frr": 1 - found / words, "words": words})
    return pd.DataFrame(rows)


def candidate_thresholds(negatives: list[Track], positives: list[Track], top: int = 400, n: int = 50) -> np.ndarray:
    """Thresholds where the DET curve can step: just above each of the `top` highest peaks of the negative
    tracks (exact at low false-accept rates: the zero-false-accept threshold is just above the highest), each
    word's peak score within a second of it (where its miss changes), and an even grid of `n` for the rest."""
    peaks = [_local_maxima(t.scores) for t in negatives]
    neg = np.unique(np.concatenate(peaks)) if peaks else np.empty(0)
    neg = neg[-top:]
    near = np.unique([t.scores[np.abs(t.times - w) <= 1.0].max(initial=0.0) for t in positives for w in t.words])
    grid = np.concatenate([np.linspace(0.0, 1.0, n), [1.0 + 1e-6]])
    return np.unique(np.concatenate([np.nextafter(neg.astype(np.float64), np.inf), near, grid]))


def _local_maxima(scores: np.ndarray) -> np.ndarray:
    if len(scores) < 3:
        return np.asarray(scores, np.float64)
    s = np.asarray(scores, np.float64)
    inner = (s[1:-1] >= s[:-2]) & (s[1:-1] >= s[2:])
    return np.concatenate([s[:1], s[1:-1][inner], s[-1:]])


def threshold_for_rate(table: pd.DataFrame, fa_per_hour: float) -> float | None:
    """The lowest threshold such that it and every threshold above it keep the false-accept rate at most the
    target (lowering a threshold from the top until the rate first exceeds it); None when even the highest
    threshold tried exceeds it. Not simply the lowest threshold under the rate: a score that stays above a very
    low threshold fires once and never re-arms, so the rate is not monotone down there."""
    ordered = table.sort_values("threshold", ascending=False)
    over = (ordered["fa_per_hour"] > fa_per_hour).to_numpy()
    keep = len(over) if not over.any() else int(np.argmax(over))
    return float(ordered["threshold"].iloc[keep - 1]) if keep else None


def frr_at_rate(table: pd.DataFrame, fa_per_hour: float) -> float:
    """The DET curve read at a rate: the fewest misses of any threshold from threshold_for_rate's up (each keeps
    the rate), 1.0 (every word missed) when none does. The fewest, not the lowest threshold's: with a refractory
    period, a lower threshold can fire early on the run-up to a word and miss the word itself."""
    th = threshold_for_rate(table, fa_per_hour)
    return 1.0 if th is None else float(table.loc[table["threshold"] >= th, "frr"].min())


def thresholds_between(scores: list[np.ndarray], n: int = 200) -> np.ndarray:
    """Candidate thresholds: n quantiles of the pooled scores, plus the ends (every change in the DET curve
    happens at a score; quantiles keep the table small on hours of audio)."""
    pooled = np.concatenate([s.ravel() for s in scores]) if scores else np.array([0.5])
    return np.unique(np.concatenate([np.quantile(pooled, np.linspace(0, 1, n)), [0.0, 1.0 + 1e-6]]))
