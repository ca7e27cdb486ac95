"""False accepts per hour and FRR of embedded words from score tracks, and the threshold for a target rate."""
import numpy as np
import pandas as pd
import pytest

from transferlab.experiments.wakeword.stream_metrics import (Track, candidate_thresholds, det_table, fa_table,
                                                             frr_at_rate, matched, threshold_for_rate,
                                                             thresholds_between)
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


def test_candidate_thresholds_make_the_low_rate_end_exact_and_counting_stops_at_the_cap():
    negative = _track(3600, {100: 0.3, 500: 0.6, 900: 0.9})
    positive = _track(600, {50: 0.95, 150: 0.7, 250: 0.5, 350: 0.4}, words=[50, 150, 250, 350])
    table = det_table([negative], [positive], candidate_thresholds([negative], [positive]), 1.0)
    zero = table[table["false_accepts"] == 0]
    # The lowest threshold with no false accept sits just above the highest negative peak: only 0.95 is found.
    assert zero["threshold"].min() == pytest.approx(0.9) and zero["threshold"].min() > 0.9
    assert table.loc[table["threshold"] == zero["threshold"].min(), "frr"].iloc[0] == 0.75
    noisy = Track(np.arange(0, 3600, 0.1), np.tile([0.9, 0.0], 18000), np.empty(0))
    capped = fa_table([noisy], np.array([0.5, 0.95]), 0.0, max_per_hour=100)
    assert bool(capped["capped"].iloc[0]) and capped["fa_per_hour"].iloc[0] >= 100
    assert capped["fa_per_hour"].iloc[1] == 0 and not capped["capped"].iloc[1]


def test_the_threshold_is_lowered_from_the_top_only_while_the_rate_holds():
    # A score stuck above a very low threshold fires once and never re-arms: 0.0 looks quiet, 0.5 is not.
    table = pd.DataFrame({"threshold": [0.0, 0.5, 0.9], "fa_per_hour": [1.0, 10.0, 0.0], "frr": [1.0, 0.2, 0.6]})
    assert threshold_for_rate(table, 2.0) == 0.9 and frr_at_rate(table, 2.0) == 0.6
    assert threshold_for_rate(table, 10.0) == 0.0 and frr_at_rate(table, 10.0) == 0.2  # the fewest misses
    assert threshold_for_rate(table.assign(fa_per_hour=[1.0, 10.0, 5.0]), 2.0) is None
