"""Few-shot learning's tables and claims, from the episodes and pools the stage scored: no torch, so the report
stage judges the claims without importing training code."""
from __future__ import annotations

import pandas as pd


def episode_table(episodes: pd.DataFrame, confidence: float) -> pd.DataFrame:
    from transferlab.analysis.stats import mean_ci

    rows = []
    for (shots, method), g in episodes.groupby(["shots", "method"], sort=True):
        est = mean_ci(g["accuracy"], confidence)
        rows.append({"shots": int(shots), "method": method, "episodes": len(g), "accuracy": est.mean,
                     "accuracy_low": est.low, "accuracy_high": est.high})
    return pd.DataFrame(rows)


def fewshot_claims(episodes: pd.DataFrame, pools: pd.DataFrame, finetune_runs: pd.DataFrame, confidence: float,
                   min_effect: float) -> list:
    """Meta-learned prototypes vs the supervised backbone's prototypes (paired by episode), and vs the best
    fine-tuning strategy on the same pools and test set (paired by draw)."""
    from transferlab.analysis.claims import Claim, arm, guard, judge, pct
    from transferlab.analysis.stats import paired_difference

    claims = []
    for k in sorted(episodes["shots"].unique()):
        e = episodes[episodes["shots"] == k].pivot(index="episode", columns="method", values="accuracy")
        d = paired_difference(e["protonet"], e["pretrained"], confidence)
        claims.append(Claim(f"meta_beats_pretrained_features_k{k}", f"Meta-learning (prototypical network on source "
                            f"episodes) beats nearest prototypes on the pre-trained features, {k}-shot",
                            judge(d, min_effect), f"protonet − pretrained-prototypes: {pct(d, 'episodes')}"))
    main = finetune_runs["backbone"].iloc[0] if len(finetune_runs) else None
    for k in sorted(pools["per_class"].unique()):
        ft = finetune_runs[(finetune_runs["backbone"] == main) & (finetune_runs["per_class"] == k)]
        if ft.empty:
            continue
        best = ft.groupby("strategy")["test_accuracy"].mean().idxmax()
        x = pools[(pools["method"] == "protonet") & (pools["per_class"] == k)].set_index("seed")["accuracy"]
        y = ft[ft["strategy"] == best].set_index("seed")["test_accuracy"]
        seeds = sorted(set(x.index) & set(y.index))
        d = paired_difference(x.loc[seeds], y.loc[seeds], confidence) if seeds else None
        # The fine-tuned side must have converged: a capped run is a budget, not the strategy's best.
        claims.append(guard(Claim(f"meta_beats_finetuning_k{k}", f"With {k} example(s) per class, meta-learned "
                                  "prototypes beat the best fine-tuning strategy on the same pools and test set",
                                  judge(d, min_effect), f"protonet − {best}: {pct(d)}" if d else "no runs"),
                            finetune_runs, [arm(main, best, int(k))]))
    return claims


def versus_finetuning(pools: pd.DataFrame, finetune_runs: pd.DataFrame) -> pd.DataFrame:
    """Mean accuracy per K of each few-shot method and each fine-tuning strategy (main backbone)."""
    main = finetune_runs["backbone"].iloc[0]
    ft = finetune_runs[(finetune_runs["backbone"] == main) & finetune_runs["per_class"].isin(pools["per_class"])]
    rows = pools.groupby(["per_class", "method"], as_index=False)["accuracy"].mean()
    tuned = ft.groupby(["per_class", "strategy"], as_index=False, sort=False)["test_accuracy"].mean()
    tuned = tuned.rename(columns={"strategy": "method", "test_accuracy": "accuracy"})
    tuned["method"] = "fine-tune: " + tuned["method"]
    return pd.concat([rows, tuned], ignore_index=True).sort_values("per_class", kind="stable").reset_index(drop=True)
