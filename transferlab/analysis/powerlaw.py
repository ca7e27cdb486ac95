"""The learning-curve model: fit err(n) = a·n^(−b) + c and ask how many labels a target error needs.

The inverse power law with an asymptote is the standard learning-curve model: J. Hestness et al., "Deep
Learning Scaling is Predictable, Empirically", arXiv:1712.00409 (2017); R. L. Figueroa et al., "Predicting
sample size required for classification performance", BMC Med. Inform. Decis. Mak. 12:8 (2012), who fit it
with bounded non-linear least squares, as here (solved with b profiled out: G. Golub & V. Pereyra, "Separable
nonlinear least squares: the variable projection method", Inverse Problems 19, 2003); T. Viering & M. Loog,
"The Shape of Learning Curves: a Review", IEEE TPAMI 2023, on when it fails. Uncertainty comes from a
bootstrap over seeds (B. Efron & R. Tibshirani, "An Introduction to the Bootstrap", 1993), so the interval
reflects seed-to-seed spread.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["PowerLaw", "LabelsNeeded", "HoldoutResult", "fit_power_law", "bootstrap_fit", "labels_needed",
           "validate_holdout", "mean_curve", "errors_by_size", "quantiles"]

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


# The exponent b is profiled out (variable projection): given b the model is linear in a and c, so each b has a
# closed-form bounded least-squares answer, and the fit is a 1-D search over b — a log grid, then golden-section
# refinement in the best cell. Exact for the 3-parameter problem up to the grid's resolution of separate minima
# (2 % in b), free of starting points, and vectorised over many curves at once (all bootstrap refits in one go:
# the evaluate stage's 2 x 22 curves x 200 refits went from ~2 CPU-minutes of scipy least squares to seconds).
_B_GRID = np.geomspace(B_MIN, B_MAX, 400)
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def _ac_given_b(u: np.ndarray, err: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best a ≥ 0, c ∈ [0, 1] of err ≈ a·u + c for each row, and its sum of squares.

    u, err: (..., k). A convex QP in two variables: its minimum is the unconstrained one when feasible, else the
    best of the three edges' own minima (a = 0; c = 0; c = 1), each of which is a clipped 1-D least squares."""
    um, em = u.mean(-1, keepdims=True), err.mean(-1, keepdims=True)
    du, de = u - um, err - em
    suu = (du * du).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        a_free = np.where(suu > 0, (du * de).sum(-1) / suu, 0.0)
    uu = (u * u).sum(-1)
    cands = [(a_free, em[..., 0] - a_free * um[..., 0]),
             (np.zeros_like(a_free), np.clip(em[..., 0], 0.0, 1.0))]
    for c_edge in (0.0, 1.0):
        a_edge = np.maximum((u * (err - c_edge)).sum(-1) / uu, 0.0)
        cands.append((a_edge, np.full_like(a_edge, c_edge)))
    best_a = best_c = best_cost = None
    for i, (a, c) in enumerate(cands):
        cost = ((a[..., None] * u + c[..., None] - err) ** 2).sum(-1)
        if i == 0:  # the unconstrained minimum counts only where it is feasible
            cost = np.where((a >= 0) & (c >= 0) & (c <= 1), cost, np.inf)
        if best_cost is None:
            best_a, best_c, best_cost = a, c, cost
        else:
            better = cost < best_cost
            best_a, best_c, best_cost = (np.where(better, a, best_a), np.where(better, c, best_c),
                                         np.where(better, cost, best_cost))
    return best_a, best_c, best_cost


def _fit_many(n: np.ndarray, errs: np.ndarray) -> np.ndarray:
    """(a, b, c) per row of errs (m, k), all fitted on the same sizes n (k,): shape (m, 3)."""
    n0 = float(np.exp(np.mean(np.log(n))))
    logx = np.log(n / n0)  # n rescaled by its geometric mean: a' = a·n0^(−b) is of the order of the errors

    def cost(b):  # b: (m,) or (m, g) → the profile sum of squares, same shape
        u = np.exp(-b[..., None] * logx)
        return _ac_given_b(u, errs.reshape(errs.shape[:1] + (1,) * (b.ndim - 1) + errs.shape[1:]))

    grid = np.broadcast_to(_B_GRID, (len(errs), len(_B_GRID)))
    g = np.argmin(cost(grid)[2], axis=1)
    lo, hi = _B_GRID[np.maximum(g - 1, 0)], _B_GRID[np.minimum(g + 1, len(_B_GRID) - 1)]
    # Golden-section search in [lo, hi] on every row at once; 60 steps shrink the bracket by 1e-12.
    x1, x2 = hi - _GOLDEN * (hi - lo), lo + _GOLDEN * (hi - lo)
    f1, f2 = cost(x1)[2], cost(x2)[2]
    for _ in range(60):
        left = f1 <= f2
        hi, lo = np.where(left, x2, hi), np.where(left, lo, x1)
        x2n, x1n = np.where(left, x1, lo + _GOLDEN * (hi - lo)), np.where(left, hi - _GOLDEN * (hi - lo), x2)
        fnew = cost(np.where(left, x1n, x2n))[2]
        f1, f2 = np.where(left, fnew, f2), np.where(left, f1, fnew)
        x1, x2 = x1n, x2n
    b = np.where(f1 <= f2, x1, x2)
    (a_, c, f), (a_g, c_g, f_g), b_g = cost(b), cost(_B_GRID[g]), _B_GRID[g]
    keep = f <= f_g  # never worse than the best grid point
    a_, b, c = np.where(keep, a_, a_g), np.where(keep, b, b_g), np.where(keep, c, c_g)
    return np.column_stack([a_ * n0 ** b, b, c])


def fit_power_law(n, err) -> PowerLaw:
    """Least squares on err with a ≥ 0, b ∈ [1e-3, 5], c ∈ [0, 1] (b profiled out: see _fit_many)."""
    n, err = _check_curve(n, err)
    a, b, c = (float(v) for v in _fit_many(n, err[None, :])[0])
    return PowerLaw(a=a, b=b, c=c)


def errors_by_size(per_seed: pd.DataFrame) -> dict[float, np.ndarray]:
    missing = {"n", "seed", "error"} - set(per_seed.columns)
    if missing:
        raise ValueError(f"per_seed lacks columns {sorted(missing)} (needs n, seed, error)")
    groups = {float(k): g["error"].to_numpy(float) for k, g in per_seed.groupby("n")}
    if len(groups) < 3:
        raise ValueError(f"need at least 3 distinct n to fit a, b, c, got {len(groups)}")
    return dict(sorted(groups.items()))


def mean_curve(groups: dict[float, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return np.array(list(groups)), np.array([v.mean() for v in groups.values()])


def bootstrap_fit(per_seed: pd.DataFrame, n_boot: int = 200, seed: int = 0) -> list[PowerLaw]:
    """Refit the mean curve n_boot times, each time resampling the seeds with replacement within each n.

    Resampling within n keeps the design (which sizes were run) fixed and varies only what a different
    set of seeds would have given. Fits that fail are dropped (with a warning).
    """
    groups = errors_by_size(per_seed)
    rng = np.random.default_rng(seed)
    ns = np.array(list(groups))
    # The same draws, in the same order, as one rng.choice per (refit, size): seeded results do not change.
    means = np.array([[rng.choice(v, size=len(v), replace=True).mean() for v in groups.values()]
                      for _ in range(n_boot)]).reshape(n_boot, len(groups))
    fits = _fit_many(ns, means)
    ok = np.all(np.isfinite(fits), axis=1)
    if not ok.all():
        warnings.warn(f"{int((~ok).sum())} of {n_boot} bootstrap fits failed and were dropped", stacklevel=2)
    return [PowerLaw(a=float(a), b=float(b), c=float(c)) for a, b, c in fits[ok]]


def quantiles(values: np.ndarray, confidence: float) -> tuple[float, float]:
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
        low, high = quantiles(np.array([s.inverse(target_error) for s in samples]), confidence)
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
    groups = errors_by_size(per_seed)
    n_out = max(groups)
    measured_seeds = groups.pop(n_out)
    if len(groups) < 3:
        raise ValueError("holdout validation needs at least 3 sizes besides the held-out largest one")
    fit_df = pd.DataFrame([(n, i, e) for n, v in groups.items() for i, e in enumerate(v)],
                          columns=["n", "seed", "error"])
    point = fit_power_law(*mean_curve(groups))
    preds = np.array([s(n_out) for s in bootstrap_fit(fit_df, n_boot=n_boot, seed=seed)], dtype=float)
    last = groups[max(groups)]
    sd = float(last.std(ddof=1)) if len(last) > 1 else 0.0
    rng = np.random.default_rng(seed + 1)
    preds = preds + rng.normal(0.0, sd / math.sqrt(len(measured_seeds)), size=len(preds))
    low, high = quantiles(preds, confidence)
    return HoldoutResult(n=n_out, predicted=float(point(n_out)), low=low, high=high,
                         measured=float(measured_seeds.mean()))
