"""Multi-task results → tables with 95% CIs over seeds and the course's multi-task claims, judged."""
from __future__ import annotations

import pandas as pd

from transferlab.analysis.claims import Claim, guard, judge, pct
from transferlab.analysis.stats import mean_ci, paired_difference

# The three experiments of the stage (runs.csv's `experiment` column).
WIDTH, MISSING, FEW = "width", "missing_labels", "few_labels"

METRICS = ("auroc", "ap", "accuracy")


def width_key(width: str) -> list[int]:
    return [int(w) for w in str(width).split("-")]


def per_seed(runs: pd.DataFrame, task: str | None = None) -> pd.DataFrame:
    """Mean over tasks (or one task) per arm and seed."""
    sel = runs if task is None else runs[runs["task"] == task]
    keys = ["experiment", "arm", "width", "missing", "seed"]
    return sel.groupby(keys, as_index=False)[list(METRICS) + ["params"]].mean()


def arm_table(runs: pd.DataFrame, confidence: float, few_task: str) -> pd.DataFrame:
    """One row per experiment × arm × setting: mean and CI of each metric over seeds (few-label: that task)."""
    rows = []
    for experiment in (WIDTH, MISSING, FEW):
        seeds = per_seed(runs[runs["experiment"] == experiment], few_task if experiment == FEW else None)
        if experiment == MISSING:  # 0 % missing: the width experiment's shared network, for both treatments
            main = runs[runs["experiment"] == FEW]["width"].iloc[0]  # the few-label arms always use the main width
            zero = per_seed(runs[(runs["experiment"] == WIDTH) & (runs["arm"] == "shared") & (runs["width"] == main)])
            seeds = pd.concat([seeds] + [zero.assign(experiment=MISSING, arm=a) for a in ("masked", "as_negative")])
        for (arm, width, missing), g in seeds.groupby(["arm", "width", "missing"], sort=False):
            row = {"experiment": experiment, "arm": arm, "width": width, "missing": missing,
                   "params": int(g["params"].iloc[0]), "seeds": len(g)}
            for m in METRICS:
                est = mean_ci(g.sort_values("seed")[m], confidence)
                row.update({m: est.mean, f"{m}_low": est.low, f"{m}_high": est.high})
            rows.append(row)
    return pd.DataFrame(rows).sort_values(["experiment", "width", "missing", "arm"]).reset_index(drop=True)


def _paired(seeds: pd.DataFrame, a: dict, b: dict, metric: str, confidence: float):
    def pick(sel):
        g = seeds
        for k, v in sel.items():
            g = g[g[k] == v]
        return g.set_index("seed")[metric]
    x, y = pick(a), pick(b)
    common = sorted(set(x.index) & set(y.index))
    return paired_difference(x.loc[common], y.loc[common], confidence) if common else None


def multitask_claims(runs: pd.DataFrame, metric: str, few_task: str, confidence: float,
                     min_effect: float) -> list[Claim]:
    claims = []
    name = {"auroc": "AUROC", "ap": "average precision", "accuracy": "accuracy"}[metric]

    def add(key, statement, d, what, over="mean {name} over tasks", arms=()):
        over = over.format(name=name)
        claims.append(guard(Claim(key, statement, judge(d, min_effect),
                                  f"{what}, {over}: {pct(d)}" if d is not None else f"{what}: no runs"), runs, arms))

    widths = per_seed(runs[runs["experiment"] == WIDTH])
    both = set(widths[widths["arm"] == "shared"]["width"]) & set(widths[widths["arm"] == "separate"]["width"])
    order = sorted(both, key=width_key)  # widths with both arms, narrow to wide
    small, large = order[0], order[-1]
    add("mtl_shared_beats_separate", f"One shared network beats one network per task when it is big enough "
        f"(width {large})", _paired(widths, {"arm": "shared", "width": large}, {"arm": "separate", "width": large},
                                     metric, confidence), f"width {large}, shared − separate",
        arms=[{"experiment": WIDTH, "arm": a, "width": large} for a in ("shared", "separate")])
    if small != large:
        add("mtl_hurts_when_too_small", f"Multi-task hurts when the network is too small (width {small}: separate "
            "networks win)", _paired(widths, {"arm": "separate", "width": small}, {"arm": "shared", "width": small},
                                     metric, confidence), f"width {small}, separate − shared",
            arms=[{"experiment": WIDTH, "arm": a, "width": small} for a in ("shared", "separate")])
    few = per_seed(runs[runs["experiment"] == FEW], few_task)
    add("mtl_helps_task_with_few_labels", f"Sharing helps a task with few labels ({few_task}) when the other tasks "
        "have many", _paired(few, {"arm": "shared"}, {"arm": "separate"}, metric, confidence),
        f"{few_task}, shared − its own network", over=f"{{name}} on {few_task}",
        arms=[{"experiment": FEW, "arm": a} for a in ("shared", "separate")])
    missing = runs[runs["experiment"] == MISSING]
    if not missing.empty:
        worst = float(missing["missing"].max())
        seeds = per_seed(missing[missing["missing"] == worst])
        add("mtl_mask_missing_labels", f"With missing labels ('?'), summing the loss over labelled entries only "
            f"beats counting them as negatives ({worst:.0%} missing)",
            _paired(seeds, {"arm": "masked"}, {"arm": "as_negative"}, metric, confidence),
            f"{worst:.0%} missing, masked − as negative",
            arms=[{"experiment": MISSING, "arm": a, "missing": worst} for a in ("masked", "as_negative")])
    return claims
