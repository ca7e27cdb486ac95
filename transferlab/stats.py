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
