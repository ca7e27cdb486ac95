"""Learning-curve extrapolation: fit err(n) = a·n^(−b) + c and ask how many labels a target error needs.

The inverse power law with an asymptote is the standard learning-curve model: J. Hestness et al., "Deep
Learning Scaling is Predictable, Empirically", arXiv:1712.00409 (2017); R. L. Figueroa et al., "Predicting
sample size required for classification performance", BMC Med. Inform. Decis. Mak. 12:8 (2012), who fit
it with bounded non-linear least squares as here; T. Viering & M. Loog, "The Shape of Learning Curves:
a Review", IEEE TPAMI 2023, on when it fails. Uncertainty comes from a bootstrap over seeds (B. Efron &
R. Tibshirani, "An Introduction to the Bootstrap", 1993), so the interval reflects seed-to-seed spread.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

__all__ = ["PowerLaw", "LabelsNeeded", "HoldoutResult", "fit_power_law", "bootstrap_fit", "labels_needed",
           "validate_holdout"]

B_MIN, B_MAX = 1e-3, 5.0  # b > 0 strictly; b > 5 is never a plausible learning-curve exponent


@dataclass(frozen=True)
class PowerLaw:
    a: float
    b: float
    c: float

    def __call__(self, n):
        return self.a * np.asarray(n, dtype=float) ** (-self.b) + self.c

    def inverse(self, target_error: float) -> float:
        """n with err(n) = target: (a/(target − c))^(1/b); inf when the asymptote c is not below target."""
        gap = target_error - self.c
        if gap <= 0:
            return math.inf
        if self.a == 0:
            return 0.0  # flat curve already at c < target: any n reaches it
        return float((self.a / gap) ** (1.0 / self.b))


@dataclass(frozen=True)
class LabelsNeeded:
    estimate: float      # inf when unreachable
    low: float
    high: float          # inf when a sizeable share of bootstrap fits cannot reach the target
    reachable: bool
    message: str


@dataclass(frozen=True)
class HoldoutResult:
    n: float
    predicted: float
    low: float
    high: float
    measured: float

    @property
    def inside(self) -> bool:
        return self.low <= self.measured <= self.high


def _check_curve(n, err) -> tuple[np.ndarray, np.ndarray]:
    n, err = np.asarray(n, dtype=float).ravel(), np.asarray(err, dtype=float).ravel()
    if n.shape != err.shape:
        raise ValueError(f"n and err differ in length: {len(n)} vs {len(err)}")
    if len(n) < 2:
        raise ValueError(f"need at least 2 points to fit a learning curve, got {len(n)}")
    if not (np.all(np.isfinite(n)) and np.all(np.isfinite(err))):
        raise ValueError("n and err must be finite")
    if np.any(n <= 0):
        raise ValueError("n must be positive")
    return n, err


def fit_power_law(n, err, start: PowerLaw | None = None) -> PowerLaw:
    """Least squares on err with a ≥ 0, b ∈ [1e-3, 5], c ∈ [0, 1], from several starting points.

    n is rescaled by its geometric mean n0 inside the fit (a' = a·n0^(−b)) so that a' is of the order of
    the errors whatever the units of n; the best of a few starts guards against the flat valleys this
    3-parameter model has on 3–6 points. start (e.g. the fit to the mean curve, when refitting bootstrap
    resamples) replaces the grid of starts by itself plus two grid points, which is 3× faster.
    """
    n, err = _check_curve(n, err)
    n0 = float(np.exp(np.mean(np.log(n))))
    x = n / n0
    logx = np.log(x)

    def resid(p):
        return p[0] * x ** (-p[1]) + p[2] - err

    def jac(p):  # analytic: fewer evaluations than finite differences, and exact near the bounds
        xb = x ** (-p[1])
        return np.column_stack([xb, -p[0] * logx * xb, np.ones_like(x)])

    lo, hi = np.array([0.0, B_MIN, 0.0]), np.array([np.inf, B_MAX, 1.0])
    emin = float(err.min())
    i = int(np.argmin(np.abs(logx)))  # the point nearest n0 sets a'0 given b0 and c0
    grid = [(b0, min(max(c0, 0.0), 1.0)) for c0 in (0.0, 0.5 * emin, 0.9 * emin) for b0 in (0.3, 0.7, 1.5)]
    starts = [(max((err[i] - c0) * x[i] ** b0, 1e-6), b0, c0) for b0, c0 in grid]
    if start is not None:
        starts = [(start.a * n0 ** (-start.b), start.b, start.c), starts[1], starts[4]]
    best = None
    for p0 in starts:
        p0 = np.clip(p0, lo, [1e12, B_MAX, 1.0])
        try:
            r = least_squares(resid, p0, jac=jac, bounds=(lo, hi), method="trf",
                              ftol=1e-12, xtol=1e-12, gtol=1e-12, max_nfev=2000)
        except (ValueError, np.linalg.LinAlgError):
            continue
        if best is None or r.cost < best.cost:
            best = r
    if best is None:
        raise RuntimeError("power-law fit failed from every starting point")
    a_, b, c = (float(v) for v in best.x)
    return PowerLaw(a=a_ * n0 ** b, b=b, c=c)


def _per_seed(per_seed: pd.DataFrame) -> dict[float, np.ndarray]:
    missing = {"n", "seed", "error"} - set(per_seed.columns)
    if missing:
        raise ValueError(f"per_seed lacks columns {sorted(missing)} (needs n, seed, error)")
    groups = {float(k): g["error"].to_numpy(float) for k, g in per_seed.groupby("n")}
    if len(groups) < 3:
        raise ValueError(f"need at least 3 distinct n to fit a, b, c, got {len(groups)}")
    return dict(sorted(groups.items()))


def _mean_curve(groups: dict[float, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return np.array(list(groups)), np.array([v.mean() for v in groups.values()])


def bootstrap_fit(per_seed: pd.DataFrame, n_boot: int = 200, seed: int = 0) -> list[PowerLaw]:
    """Refit the mean curve n_boot times, each time resampling the seeds with replacement within each n.

    Resampling within n keeps the design (which sizes were run) fixed and varies only what a different
    set of seeds would have given. Fits that fail are dropped (with a warning).
    """
    groups = _per_seed(per_seed)
    rng = np.random.default_rng(seed)
    ns, mean_err = _mean_curve(groups)
    start = fit_power_law(ns, mean_err)
    fits, failed = [], 0
    for _ in range(n_boot):
        means = np.array([rng.choice(v, size=len(v), replace=True).mean() for v in groups.values()])
        try:
            fits.append(fit_power_law(ns, means, start=start))
        except RuntimeError:
            failed += 1
    if failed:
        warnings.warn(f"{failed} of {n_boot} bootstrap fits failed and were dropped", stacklevel=2)
    return fits


def _quantiles(values: np.ndarray, confidence: float) -> tuple[float, float]:
    # inverted_cdf never interpolates, so a quantile that falls on an inf is inf (not nan).
    q = np.quantile(values, [(1 - confidence) / 2, (1 + confidence) / 2], method="inverted_cdf")
    return float(q[0]), float(q[1])


def labels_needed(fit: PowerLaw, target_error: float, samples: list[PowerLaw] | None = None,
                  confidence: float = 0.95) -> LabelsNeeded:
    """Labels n at which the fitted curve reaches target_error, with a bootstrap interval from samples.

    Unreachable (estimate = inf, reachable=False) when the fitted asymptote c ≥ target: more labels of
    the same kind will not get there. The interval's high end is inf when more than (1−confidence)/2 of
    the bootstrap fits cannot reach the target either.
    """
    est = fit.inverse(target_error)
    low = high = est
    if samples:
        low, high = _quantiles(np.array([s.inverse(target_error) for s in samples]), confidence)
    if math.isinf(est):
        msg = (f"unreachable: fitted asymptote c={fit.c:.4g} is not below target error {target_error:.4g}")
        return LabelsNeeded(math.inf, low, high, False, msg)
    msg = f"≈{est:.0f} labels" + (f" ({confidence:.0%} interval {low:.0f}–{high:.0f})" if samples else "")
    return LabelsNeeded(est, low, high, True, msg)


def validate_holdout(per_seed: pd.DataFrame, n_boot: int = 200, seed: int = 0,
                     confidence: float = 0.95) -> HoldoutResult:
    """Fit on every size but the largest, predict the largest, compare with its measured mean error.

    The interval adds to the bootstrap spread of the prediction the noise of a mean over the held-out
    seeds, estimated from the seed spread at the largest fitted size (spread usually shrinks with n, so
    this errs on the wide side) — the measured value is itself a noisy mean, not the true curve.
    """
    groups = _per_seed(per_seed)
    n_out = max(groups)
    measured_seeds = groups.pop(n_out)
    if len(groups) < 3:
        raise ValueError("holdout validation needs at least 3 sizes besides the held-out largest one")
    fit_df = pd.DataFrame([(n, i, e) for n, v in groups.items() for i, e in enumerate(v)],
                          columns=["n", "seed", "error"])
    point = fit_power_law(*_mean_curve(groups))
    preds = np.array([s(n_out) for s in bootstrap_fit(fit_df, n_boot=n_boot, seed=seed)], dtype=float)
    last = groups[max(groups)]
    sd = float(last.std(ddof=1)) if len(last) > 1 else 0.0
    rng = np.random.default_rng(seed + 1)
    preds = preds + rng.normal(0.0, sd / math.sqrt(len(measured_seeds)), size=len(preds))
    low, high = _quantiles(preds, confidence)
    return HoldoutResult(n=n_out, predicted=float(point(n_out)), low=low, high=high,
                         measured=float(measured_seeds.mean()))
