"""Power-law learning curves: recovery of known parameters, analytic inverse, unreachable targets, holdout."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from transferlab.analysis.powerlaw import PowerLaw, bootstrap_fit, fit_power_law, labels_needed, validate_holdout

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


def test_fit_is_the_least_squares_minimum_within_the_bounds():
    """The profiled fit against scipy's bounded least squares from a grid of starts (an independent solver):
    never a larger sum of squares, on noisy curves of 3-6 sizes, including ones that end on a bound."""
    from scipy.optimize import least_squares

    rng = np.random.default_rng(7)
    for _ in range(40):
        k = int(rng.integers(3, 7))
        n = np.sort(rng.choice([1, 2, 5, 10, 20, 50, 100, 300, 1000], size=k, replace=False)).astype(float)
        err = np.clip(rng.uniform(0.1, 1) * n ** -rng.uniform(0.05, 2) + rng.uniform(0, 0.4)
                      + rng.normal(0, rng.choice([0.001, 0.01, 0.05]), size=k), 0, 1)
        fit = fit_power_law(n, err)
        assert fit.a >= 0 and 1e-3 <= fit.b <= 5 and 0 <= fit.c <= 1
        ours = float(np.sum((fit(n) - err) ** 2))
        best = min(least_squares(lambda p: p[0] * n ** -p[1] + p[2] - err, (a0, b0, c0),
                                 bounds=([0, 1e-3, 0], [np.inf, 5, 1]), method="trf").cost * 2
                   for a0 in (0.1, 1.0) for b0 in (0.3, 1.0, 2.5) for c0 in (0.0, 0.5 * err.min()))
        assert ours <= best * (1 + 1e-6) + 1e-12, (n, err, fit, ours, best)
    flat = fit_power_law([10, 100, 1000], [0.3, 0.3, 0.3])  # no decay: a = 0, c = the level
    assert flat.a == pytest.approx(0, abs=1e-12) and flat.c == pytest.approx(0.3)
    rising = fit_power_law([10, 100, 1000], [0.1, 0.2, 0.3])  # a power law cannot rise: the best is flat
    assert rising.a == pytest.approx(0, abs=1e-12) and rising.c == pytest.approx(0.2)


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


# --- The evaluation stage's tables and claim (accuracy terms, every strategy of the main backbone) ---------------

POOLS = (1, 5, 10, 50, 300)  # the default vision pool sizes: fit on 1..50, predict 300
CURVES = {"head": PowerLaw(0.35, 0.35, 0.06), "full": PowerLaw(0.4, 0.6, 0.015)}


def _runs(curves: dict, sizes=POOLS, seeds: int = 3, sd: float = 0.005, rng_seed: int = 0) -> pd.DataFrame:
    """A runs table as the evaluate stage writes it: accuracy = 1 − err(n) + noise, plus a second backbone."""
    rng = np.random.default_rng(rng_seed)
    rows = [{"backbone": "full", "strategy": s, "per_class": n, "seed": k,
             "accuracy": float(1 - c(n) + rng.normal(0, sd))}
            for s, c in curves.items() for n in sizes for k in range(seeds)]
    rows += [{"backbone": "small", "strategy": "full", "per_class": n, "seed": k, "accuracy": 0.5} for n in sizes
             for k in range(seeds)]
    return pd.DataFrame(rows)


def _roundtrip(table: pd.DataFrame, tmp_path) -> pd.DataFrame:
    table.to_csv(tmp_path / "extrapolation.csv", index=False)
    return pd.read_csv(tmp_path / "extrapolation.csv")


def test_holdout_table_predicts_the_largest_pool_of_a_power_law_curve(tmp_path):
    from transferlab.analysis.claims import HOLDS
    from transferlab.analysis.extrapolate import holdout_claim, holdout_metrics, holdout_table

    table = holdout_table(_runs(CURVES), confidence=0.95, n_boot=100)
    assert list(table["strategy"]) == ["head", "full"]  # the main backbone only, in run order
    assert set(table["n"]) == {300} and set(table["fitted_on"]) == {"1, 5, 10, 50"}
    for r in table.itertuples():
        truth = 1 - float(CURVES[r.strategy](300))
        assert r.inside and r.low <= r.measured <= r.high and r.low <= r.predicted <= r.high
        assert abs(r.predicted - truth) < 0.01 and abs(r.miss_pp - 100 * (r.measured - r.predicted)) < 1e-9
        assert r.a == pytest.approx(CURVES[r.strategy].a, rel=0.5)  # fitted on 1..50 only, with noise
    claim = holdout_claim(_roundtrip(table, tmp_path))  # the stage judges the CSV as written
    assert claim.verdict == HOLDS and "2 of 2 strategies" in claim.evidence and "n=300/class" in claim.evidence
    metrics = holdout_metrics(table)["holdout"]
    assert set(metrics) == {"head", "full"} and metrics["full"]["per_class"] == 300 and metrics["full"]["inside"]


def test_a_curve_that_leaves_its_power_law_at_the_largest_pool_is_caught(tmp_path):
    from transferlab.analysis.claims import FAILS
    from transferlab.analysis.extrapolate import holdout_claim, holdout_table

    runs = _runs(CURVES)
    big = runs["per_class"] == 300
    runs.loc[big & (runs["backbone"] == "full"), "accuracy"] -= 0.15  # e.g. a broken large-pool run
    table = holdout_table(runs, n_boot=100)
    assert not table["inside"].any() and (table["miss_pp"] < -10).all()
    claim = holdout_claim(_roundtrip(table, tmp_path))
    assert claim.verdict == FAILS and "0 of 2" in claim.evidence and "pp)" in claim.evidence


def test_too_few_pool_sizes_give_rows_saying_why_not_a_crash(tmp_path):
    from transferlab.analysis.claims import INCONCLUSIVE
    from transferlab.analysis.extrapolate import holdout_claim, holdout_metrics, holdout_table, power_law_table

    smoke = _runs(CURVES, sizes=(1, 5), seeds=2)  # the smoke profile's sweep
    table = holdout_table(smoke)
    assert len(table) == 2 and table["inside"].isna().all() and table["predicted"].isna().all()
    assert all("needs ≥4 pool sizes" in n and "has 2 (1, 5)" in n for n in table["note"])
    fits = power_law_table(smoke)
    assert fits["a"].isna().all() and all("needs ≥3 pool sizes" in n for n in fits["note"])
    claim = holdout_claim(_roundtrip(table, tmp_path))
    assert claim.verdict == INCONCLUSIVE and "no strategy could be checked: needs ≥4" in claim.evidence
    assert holdout_metrics(table) == {}
    # Three sizes: enough to fit the whole curve, not to hold one out as well.
    three = _runs(CURVES, sizes=(5, 10, 50), seeds=2)
    assert holdout_table(three)["inside"].isna().all()
    assert power_law_table(three, n_boot=20)["a"].notna().all()


def test_one_seed_per_size_is_predicted_but_not_checked(tmp_path):
    from transferlab.analysis.claims import INCONCLUSIVE
    from transferlab.analysis.extrapolate import holdout_claim, holdout_table

    table = holdout_table(_runs({"full": CURVES["full"]}, seeds=1), n_boot=20)
    assert table["predicted"].notna().all() and table["inside"].isna().all()
    assert "one seed per size" in table["note"].iloc[0]
    assert holdout_claim(_roundtrip(table, tmp_path)).verdict == INCONCLUSIVE


def _checked(inside: list[bool], misses: list[float] | None = None) -> pd.DataFrame:
    misses = misses or [0.5 if i else 3.0 for i in inside]
    return pd.DataFrame([{"backbone": "full", "strategy": f"s{i}", "sizes": 5, "seeds": 3, "confidence": 0.95,
                          "fitted_on": "1, 5, 10, 50", "n": 300.0, "predicted": 0.9, "low": 0.89, "high": 0.91,
                          "measured": 0.9 + m / 100, "miss_pp": m, "inside": ok, "note": ""}
                         for i, (ok, m) in enumerate(zip(inside, misses))])


@pytest.mark.parametrize("inside,verdict", [([True, True, True], "holds"), ([True, True, False], "inconclusive"),
                                            ([True, False, False], "does not hold"), ([False], "does not hold"),
                                            ([True, False], "inconclusive")])
def test_holdout_claim_verdicts_follow_the_counts(inside, verdict, tmp_path):
    from transferlab.analysis.extrapolate import HOLDOUT_KEY, HOLDOUT_STATEMENT, holdout_claim

    claim = holdout_claim(_roundtrip(_checked(inside), tmp_path))
    assert (claim.key, claim.statement, claim.verdict) == (HOLDOUT_KEY, HOLDOUT_STATEMENT, verdict)
    assert f"{sum(inside)} of {len(inside)} strategies" in claim.evidence
    worst = "+3.0 pp" if not all(inside) else "+0.5 pp"
    assert worst in claim.evidence


def test_power_law_table_recovers_the_asymptote():
    from transferlab.analysis.extrapolate import power_law_table

    fits = power_law_table(_runs(CURVES, sd=0.002), n_boot=100).set_index("strategy")
    for s, true in CURVES.items():
        r = fits.loc[s]
        assert r["asymptote_low"] <= r["asymptote"] <= r["asymptote_high"]
        assert abs(r["asymptote"] - (1 - true.c)) < 0.02 and r["b_low"] <= r["b"] <= r["b_high"]
        assert r["rmse_pp"] < 0.5 and r["fitted_on"] == "1, 5, 10, 50, 300"


def test_advise_reads_the_holdout_check(tmp_path):
    from transferlab.analysis.extrapolate import holdout_table
    from transferlab.ops.advise import holdout_check

    root = tmp_path / "ws"
    root.mkdir()
    (root / "dvc.yaml").write_text("stages:\n  evaluate:\n    cmd: python -m stages.evaluate --out results/ev\n")
    missing = holdout_check(root)
    assert missing["file"] is None and "results/ev/extrapolation.csv not found" in missing["summary"]
    (root / "results" / "ev").mkdir(parents=True)
    holdout_table(_runs(CURVES), n_boot=50).to_csv(root / "results" / "ev" / "extrapolation.csv", index=False)
    check = holdout_check(root)
    assert check["file"] == "results/ev/extrapolation.csv" and check["verdict"] == "holds"
    assert "2 of 2 strategies" in check["summary"] and [r["strategy"] for r in check["rows"]] == ["head", "full"]


def test_the_held_out_check_is_inconclusive_when_a_run_on_the_curves_hit_its_cap():
    from transferlab.analysis.claims import arm, guard
    from transferlab.analysis.extrapolate import holdout_claim, holdout_table

    runs = _runs(CURVES).assign(stopped="converged", steps=100, cap_steps=600)
    table = holdout_table(runs, n_boot=20)
    arms = [arm(b, s, int(n)) for b, s, n in runs[["backbone", "strategy", "per_class"]].drop_duplicates()
            .itertuples(index=False)]
    assert guard(holdout_claim(table), runs, arms).verdict == "holds"
    arms = [a for a in arms if a["backbone"] == "full"]
    largest = runs[(runs["backbone"] == "full") & (runs["per_class"] == runs["per_class"].max())].index[0]
    runs.loc[largest, ["stopped", "steps"]] = ["cap", 600]  # one run of the largest pool ran out of steps
    claim = guard(holdout_claim(table), runs, arms)
    assert claim.verdict == "inconclusive" and claim.evidence.startswith("under-trained: ")
    assert "stopped at its cap of 600 steps in 1 of" in claim.evidence
