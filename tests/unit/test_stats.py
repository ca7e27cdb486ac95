"""Confidence intervals over seeds and paired differences."""
import math

import pytest

from transferlab.analysis.stats import mean_ci, paired_difference


def test_mean_ci_matches_t_distribution():
    e = mean_ci([0.8, 0.9, 1.0])
    assert e.mean == pytest.approx(0.9)
    # t(0.975, 2) = 4.3027; sd = 0.1; half = 4.3027 * 0.1 / sqrt(3)
    assert e.half_width == pytest.approx(4.3027 * 0.1 / math.sqrt(3), rel=1e-3)
    one = mean_ci([0.5])
    assert one.low == one.high == 0.5 and one.n == 1


def test_paired_difference_uses_pairs():
    a, b = [0.50, 0.70, 0.90], [0.40, 0.60, 0.80]
    d = paired_difference(a, b)
    assert d.mean == pytest.approx(0.1) and d.half_width == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError):
        paired_difference([1, 2], [1])
