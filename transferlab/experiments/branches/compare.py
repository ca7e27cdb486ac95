"""Pipeline vs end-to-end: learning curves over training-set size, paired differences, the crossover, claims."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from transferlab.analysis.claims import FAILS, HOLDS, INCONCLUSIVE, Claim, guard, judge, pct
from transferlab.analysis.stats import mean_ci, paired_difference


def curves(runs: pd.DataFrame, confidence: float) -> pd.DataFrame:
    rows = []
    for (branch, track, kind, size), g in runs.groupby(["branch", "track", "kind", "size"], sort=True):
        e = mean_ci(g["accuracy"], confidence)
        rows.append({"branch": branch, "track": track, "kind": kind, "size": int(size), "seeds": e.n,
                     "accuracy": e.mean, "accuracy_low": max(e.low, 0.0), "accuracy_high": min(e.high, 1.0)})
    return pd.DataFrame(rows)


def differences(runs: pd.DataFrame, confidence: float) -> pd.DataFrame:
    """Pipeline minus end-to-end accuracy per track and size, paired by seed (same training subset)."""
    rows = []
    for (track, size), g in runs.groupby(["track", "size"], sort=True):
        p = g[g["kind"] == "pipeline"].set_index("seed")["accuracy"]
        e = g[g["kind"] == "end-to-end"].set_index("seed")["accuracy"]
        seeds = sorted(set(p.index) & set(e.index))
        if not seeds:
            continue
        d = paired_difference(p.loc[seeds], e.loc[seeds], confidence)
        rows.append({"track": track, "size": int(size), "pipeline_minus_e2e": d.mean, "low": d.low, "high": d.high,
                     "seeds": d.n})
    return pd.DataFrame(rows)


def crossover(diff: pd.DataFrame) -> float | None:
    """Training-set size where the mean difference changes sign from pipeline-ahead to e2e-ahead
    (interpolated on log size), or None when it never does within the sweep."""
    d = diff.sort_values("size")
    sizes, values = d["size"].to_numpy(float), d["pipeline_minus_e2e"].to_numpy()
    for i in range(len(values) - 1):
        if values[i] > 0 >= values[i + 1]:
            a, b = math.log(sizes[i]), math.log(sizes[i + 1])
            t = values[i] / (values[i] - values[i + 1])
            return float(math.exp(a + t * (b - a)))
    return None


def _estimate(row: pd.Series):
    from transferlab.analysis.stats import Estimate

    return Estimate(float(row["pipeline_minus_e2e"]), float(row["low"]), float(row["high"]), int(row["seeds"]))


def branch_claims(diff: pd.DataFrame, min_effect: float, runs: pd.DataFrame | None = None) -> list[Claim]:
    """The course's claim, per track: the hand-built pipeline wins with little data, end-to-end with a lot. With
    the `runs`, a comparison with a run that hit its cap is inconclusive (claims.guard)."""
    claims = []
    for track, d in diff.groupby("track"):
        d = d.sort_values("size")
        small, large = d.iloc[0], d.iloc[-1]
        claims.append(Claim(f"{track}_pipeline_wins_small", f"{track}: with little data the hand-built pipeline "
                            f"beats the end-to-end network", judge(_estimate(small), min_effect),
                            f"{int(small['size'])} training examples, pipeline − end-to-end: {pct(_estimate(small))}"))
        e2e = _estimate(large)
        flipped = type(e2e)(-e2e.mean, -e2e.high, -e2e.low, e2e.n)
        claims.append(Claim(f"{track}_e2e_wins_large", f"{track}: with much data the end-to-end network beats the "
                            f"hand-built pipeline", judge(flipped, min_effect),
                            f"{int(large['size'])} training examples, end-to-end − pipeline: {pct(flipped)}"))
        x = crossover(d)
        verdict = HOLDS if x is not None and claims[-2].verdict == HOLDS and claims[-1].verdict == HOLDS else (
            INCONCLUSIVE if x is not None else FAILS)
        where = (f"mean curves cross near {x:,.0f} examples" if x is not None else
                 f"no crossover within {int(d['size'].min())}–{int(d['size'].max())} examples: "
                 f"{'the pipeline' if d['pipeline_minus_e2e'].mean() > 0 else 'end-to-end'} leads throughout")
        claims.append(Claim(f"{track}_crossover", f"{track}: the two curves cross as data grows", verdict, where))
        sizes = {f"{track}_pipeline_wins_small": [small["size"]], f"{track}_e2e_wins_large": [large["size"]],
                 f"{track}_crossover": list(d["size"])}
        claims[-3:] = [guard(c, runs, [{"track": track, "kind": k, "size": int(n)} for n in sizes[c.key]
                                       for k in ("pipeline", "end-to-end")]) for c in claims[-3:]]
    return claims


def sweep_table(curve: pd.DataFrame) -> pd.DataFrame:
    """Wide table for `dvc plots`: one row per size, a column per branch (empty where a track has no such size)."""
    return curve.pivot(index="size", columns="branch", values="accuracy").reset_index().replace({np.nan: None})


def summary(curve: pd.DataFrame, diff: pd.DataFrame) -> dict:
    out = {}
    for track, d in diff.groupby("track"):
        c = curve[curve["track"] == track]
        x = crossover(d)
        out[track] = {"crossover_size": round(x) if x is not None else None,
                      **{f"{kind}_n{int(s)}": round(float(a), 4)
                         for kind, s, a in zip(c["kind"].str.replace("-", ""), c["size"], c["accuracy"])}}
    return out
