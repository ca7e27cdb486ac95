"""Distillation's tables and claims, from the students' runs (runs.csv): no torch, so the report stage judges the
claims without importing training code."""
from __future__ import annotations

from pathlib import Path

import pandas as pd


def read_runs(path: Path | str) -> pd.DataFrame:
    """The stage's runs.csv as the stage had it in memory: `omitted` is "" where no class was left out."""
    runs = pd.read_csv(path, dtype={"omitted": str})
    runs["omitted"] = runs["omitted"].fillna("")
    return runs


def distill_table(runs: pd.DataFrame, confidence: float) -> pd.DataFrame:
    """Mean and CI over seeds per transfer-set size, student kind and omitted class."""
    from transferlab.analysis.stats import mean_ci

    rows = []
    for (n, omitted, kind), g in runs.groupby(["per_class", "omitted", "kind"], sort=True):
        row = {"per_class": int(n), "omitted": omitted, "kind": kind, "seeds": len(g)}
        for m in ("accuracy", "omitted_accuracy"):
            if m in g and g[m].notna().any():
                est = mean_ci(g.sort_values("seed")[m], confidence)
                row.update({m: est.mean, f"{m}_low": est.low, f"{m}_high": est.high})
        rows.append(row)
    return pd.DataFrame(rows)


def distill_claims(runs: pd.DataFrame, confidence: float, min_effect: float) -> list:
    from transferlab.analysis.claims import Claim, guard, judge, pct
    from transferlab.analysis.stats import paired_difference

    def diff(sel: pd.DataFrame, metric: str):
        x = sel[sel["kind"] == "distilled"].set_index("seed")[metric]
        y = sel[sel["kind"] == "hard"].set_index("seed")[metric]
        seeds = sorted(set(x.index) & set(y.index))
        return paired_difference(x.loc[seeds], y.loc[seeds], confidence) if seeds else None

    claims = []
    full = runs[runs["omitted"] == ""]
    for n in (int(full["per_class"].min()), int(full["per_class"].max())):
        d = diff(full[full["per_class"] == n], "accuracy")
        claims.append(guard(Claim(f"distill_beats_hard_labels_n{n}", f"A student distilled from the teacher beats "
                                  f"the same student trained on hard labels ({n} transfer images per class)",
                                  judge(d, min_effect), f"distilled − hard accuracy: {pct(d)}" if d else "no runs"),
                            runs, [{"kind": k, "per_class": n, "omitted": ""} for k in ("distilled", "hard")]))
    omitted = runs[runs["omitted"] != ""]
    if not omitted.empty:
        cls = omitted["omitted"].iloc[0]
        d = diff(omitted, "omitted_accuracy")
        claims.append(Claim("distill_recovers_unseen_class", f"A student distilled without any '{cls}' in its transfer "
                            f"data still recognises '{cls}' (hard labels cannot)", judge(d, min_effect),
                            f"accuracy on '{cls}', distilled − hard: {pct(d)}" if d else "no runs"))
    return claims
