"""Means and confidence intervals over seeds."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Estimate:
    mean: float
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def as_dict(self) -> dict:
        return {"mean": self.mean, "ci_low": self.low, "ci_high": self.high, "n": self.n}

    def fmt(self, scale: float = 100.0, digits: int = 1) -> str:
        if self.n < 2:
            return f"{self.mean * scale:.{digits}f}"
        return f"{self.mean * scale:.{digits}f} ± {self.half_width * scale:.{digits}f}"


def mean_ci(values, confidence: float = 0.95) -> Estimate:
    """Student-t interval for the mean; with one value the interval is that value (no spread known)."""
    x = np.asarray(list(values), dtype=float)
    if len(x) == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    m = float(x.mean())
    if len(x) < 2:
        return Estimate(m, m, m, 1)
    half = float(stats.t.ppf((1 + confidence) / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return Estimate(m, m - half, m + half, len(x))


def paired_difference(a, b, confidence: float = 0.95) -> Estimate:
    """CI of mean(a - b) where a[i] and b[i] share seed i (same data draw): tighter than unpaired."""
    a, b = np.asarray(list(a), float), np.asarray(list(b), float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {len(a)} vs {len(b)}")
    return mean_ci(a - b, confidence)


def _standard_error(e: Estimate, confidence: float) -> float:
    """The standard error behind a mean_ci interval (0 for a single value: no spread known)."""
    if e.n < 2:
        return 0.0
    return e.half_width / float(stats.t.ppf((1 + confidence) / 2, e.n - 1))


def ratio_of_means(a: Estimate, b: Estimate, confidence: float = 0.95) -> Estimate:
    """CI of mean(a) / mean(b) for independent samples (delta method), floored at 0: both spreads count, on the
    smaller sample's degrees of freedom; with one value of b this is exactly a's interval divided by b."""
    if not b.mean > 0 or math.isnan(a.mean):
        return Estimate(math.nan, math.nan, math.nan, a.n)
    ratio = a.mean / b.mean
    se_a, se_b = _standard_error(a, confidence), _standard_error(b, confidence)
    n = min(x.n for x in (a, b) if x.n >= 2) if max(a.n, b.n) >= 2 else 1
    if n < 2:
        return Estimate(ratio, ratio, ratio, a.n)
    se = math.sqrt((se_a / b.mean) ** 2 + (a.mean * se_b / b.mean ** 2) ** 2)
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * se
    return Estimate(ratio, max(0.0, ratio - half), ratio + half, a.n)
