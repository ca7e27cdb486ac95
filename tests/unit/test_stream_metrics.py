"""False accepts per hour and FRR of embedded words from score tracks, and the threshold for a target rate."""
import numpy as np
import pytest

from transferlab.experiments.wakeword.stream_metrics import (Track, det_table, frr_at_rate, matched,
                                                             threshold_for_rate, thresholds_between)
from transferlab.experiments.wakeword.streaming import Detection


def _track(seconds: float, peaks: dict[float, float], words=()) -> Track:
    times = np.arange(0.5, seconds, 0.1)
    scores = np.full(len(times), 0.05)
    for at, height in peaks.items():
        scores[np.abs(times - at) < 0.15] = height
    return Track(times, scores, np.asarray(words, float))


def test_matching_counts_each_word_once_and_the_rest_as_false_accepts():
    dets = [Detection(10.2, 0.9), Detection(10.4, 0.8), Detection(30.0, 0.7)]
    assert matched(dets, np.array([10.0, 20.0])) == (1, 2)  # one word found; the second hit and 30 s are false
    assert matched([Detection(10.6, 0.9)], np.array([10.0])) == (0, 1)  # 0.6 s away: outside ±0.5 s


def test_det_table_counts_rates_per_hour_and_misses():
    # Half an hour of negatives with 3 peaks (0.3, 0.6, 0.9), a positive stream of 4 words with scores 0.4-0.95.
    negatives = [_track(1800, {100: 0.3, 500: 0.6, 900: 0.9})]
    positives = [_track(600, {50: 0.95, 150: 0.7, 250: 0.5, 350: 0.4}, words=[50, 150, 250, 350])]
    table = det_table(negatives, positives, np.array([0.35, 0.65, 0.92]), refractory_s=1.0).set_index("threshold")
    hours = table["hours"].iloc[0]
    assert hours == pytest.approx(2400 / 3600, abs=1e-3)
    assert table.loc[0.35, "false_accepts"] == 2 and table.loc[0.35, "frr"] == 0.0
    assert table.loc[0.65, "false_accepts"] == 1 and table.loc[0.65, "frr"] == 0.5
    assert table.loc[0.92, "false_accepts"] == 0 and table.loc[0.92, "frr"] == 0.75
    assert table.loc[0.65, "fa_per_hour"] == pytest.approx(1 / hours)
    assert threshold_for_rate(table.reset_index(), 1.0) == 0.92  # 0.65 gives 1.5 per hour
    assert threshold_for_rate(table.reset_index(), 1.6) == 0.65 and frr_at_rate(table.reset_index(), 1.6) == 0.5
    assert threshold_for_rate(table.reset_index(), 0.0) == 0.92 and frr_at_rate(table.reset_index(), 0.0) == 0.75
    assert threshold_for_rate(table.reset_index(), 3.5) == 0.35  # 2 per 0.67 h = 3 per hour


def test_a_table_needs_words_and_audio():
    with pytest.raises(ValueError, match="needs negative audio and embedded words"):
        det_table([_track(60, {})], [_track(60, {})], np.array([0.5]), 1.0)


def test_thresholds_cover_the_scores_and_the_point_of_no_detection():
    th = thresholds_between([np.linspace(0, 1, 1000)], n=11)
    assert th[0] == 0.0 and th[-1] > 1.0 and len(th) == 12
