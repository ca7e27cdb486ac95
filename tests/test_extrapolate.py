"""Power-law learning curves: recovery of known parameters, analytic inverse, unreachable targets, holdout."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from transferlab.extrapolate import PowerLaw, bootstrap_fit, fit_power_law, labels_needed, validate_holdout

TRUE = PowerLaw(a=3.0, b=0.6, c=0.08)
SIZES = np.array([25, 50, 100, 200, 400, 800])


def _per_seed(curve: PowerLaw, sizes, seeds: int, sd: float, rng_seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(rng_seed)
    rows = [(n, s, float(curve(n)) + rng.normal(0, sd)) for n in sizes for s in range(seeds)]
    return pd.DataFrame(rows, columns=["n", "seed", "error"])


@pytest.mark.parametrize("true", [TRUE, PowerLaw(0.5, 0.3, 0.0), PowerLaw(40.0, 1.2, 0.2)])
@pytest.mark.parametrize("k", [3, 4, 6])
def test_noiseless_curves_recover_parameters(true, k):
    sizes = SIZES[:k] if k < 6 else SIZES
    fit = fit_power_law(sizes, true(sizes))
    assert fit.a == pytest.approx(true.a, rel=1e-4)
    assert fit.b == pytest.approx(true.b, rel=1e-4)
    assert fit.c == pytest.approx(true.c, abs=1e-5)


def test_noisy_curve_parameters_inside_bootstrap_intervals():
    df = _per_seed(TRUE, SIZES, seeds=5, sd=0.01, rng_seed=1)
    samples = bootstrap_fit(df, n_boot=200, seed=0)
    assert len(samples) == 200
    for name in ("a", "b", "c"):
        vals = np.array([getattr(s, name) for s in samples])
        lo, hi = np.quantile(vals, [0.025, 0.975])
        assert lo <= getattr(TRUE, name) <= hi, (name, lo, hi)
    # Same seed → same samples (seeded rng).
    assert bootstrap_fit(df, n_boot=5, seed=3) == bootstrap_fit(df, n_boot=5, seed=3)


def test_labels_needed_is_the_analytic_inverse():
    target = 0.15
    expected = (TRUE.a / (target - TRUE.c)) ** (1 / TRUE.b)
    res = labels_needed(TRUE, target)
    assert res.reachable and res.estimate == pytest.approx(expected, rel=1e-12)
    assert res.low == res.high == res.estimate
    assert TRUE(res.estimate) == pytest.approx(target, rel=1e-12)
    # From a fit to the noiseless curve too.
    assert labels_needed(fit_power_law(SIZES, TRUE(SIZES)), target).estimate == pytest.approx(expected, rel=1e-3)


def test_labels_needed_interval_from_bootstrap():
    df = _per_seed(TRUE, SIZES, seeds=5, sd=0.005, rng_seed=2)
    fit = fit_power_law(SIZES, df.groupby("n")["error"].mean().to_numpy())
    res = labels_needed(fit, 0.15, samples=bootstrap_fit(df, n_boot=100, seed=0))
    assert res.reachable and res.low <= res.estimate <= res.high
    assert "interval" in res.message


def test_unreachable_target():
    res = labels_needed(TRUE, 0.05)  # below the asymptote c = 0.08
    assert not res.reachable and math.isinf(res.estimate)
    assert "unreachable" in res.message
    assert labels_needed(TRUE, TRUE.c).reachable is False  # c == target: reached only at n = ∞
    # Some bootstrap fits unreachable → the interval's high end is inf rather than nan.
    samples = [PowerLaw(3.0, 0.6, 0.2)] * 5 + [TRUE] * 5
    assert math.isinf(labels_needed(TRUE, 0.15, samples=samples).high)


def test_holdout_interval_contains_truth():
    df = _per_seed(TRUE, SIZES, seeds=5, sd=0.01, rng_seed=4)
    res = validate_holdout(df, n_boot=200, seed=0)
    assert res.n == 800
    assert res.low <= float(TRUE(800)) <= res.high
    assert res.inside  # the measured mean too
    assert res.predicted == pytest.approx(float(TRUE(800)), abs=0.03)


def test_bad_inputs():
    with pytest.raises(ValueError, match="differ in length"):
        fit_power_law([1, 2, 3], [0.5, 0.4])
    with pytest.raises(ValueError, match="positive"):
        fit_power_law([0, 2, 3], [0.5, 0.4, 0.3])
    with pytest.raises(ValueError, match="lacks columns"):
        bootstrap_fit(pd.DataFrame({"n": [1], "error": [0.1]}))
    with pytest.raises(ValueError, match="at least 3 sizes besides"):
        validate_holdout(_per_seed(TRUE, SIZES[:3], seeds=2, sd=0.0))
