"""Check the transferability scores against the sweep: per pool size and score, Kendall's τ between each
backbone's mean score and its mean fine-tuned accuracy (the ablation strategy, the same pools and draws), with a
bootstrap CI over seeds, and a claim judged from that CI."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from transferlab.analysis.claims import FAILS, HOLDS, INCONCLUSIVE, Claim, judge
from transferlab.analysis.stats import Estimate, paired_difference

SCORE_NAMES = {"logme": "LogME", "leep": "LEEP", "nce": "NCE", "h_score": "H-score"}
# The random-init candidate has no runs of its own: fine-tuning every layer of a random network of the main
# architecture is the main backbone's `scratch` run (its recipe is full's: same groups, same rates), so it stands
# in when the ablation strategy is full; under any other strategy the random candidate has no measured accuracy.
RANDOM_STANDS_IN = {"full": "scratch"}
# Resampling 2 seeds gives 3 distinct resamples (0,0 / 0,1 / 1,1): their percentiles are no 95% interval, and two
# seeds that agree would make any τ look certain. From 3 seeds on (10 resamples) the interval is judged.
MIN_SEEDS = 3


def measured(runs: pd.DataFrame, main: str, strategy: str, random: str = "random") -> pd.DataFrame:
    """backbone, per_class, seed, accuracy: every backbone under `strategy`, and the random candidate as the
    main backbone's scratch runs when RANDOM_STANDS_IN says they are the same training."""
    acc = "accuracy" if "accuracy" in runs else "test_accuracy"
    sel = runs[runs["strategy"] == strategy]
    parts = [sel.assign(candidate=sel["backbone"])]
    if strategy in RANDOM_STANDS_IN:
        scratch = runs[(runs["backbone"] == main) & (runs["strategy"] == RANDOM_STANDS_IN[strategy])]
        parts.append(scratch.assign(candidate=random))
    out = pd.concat(parts)[["candidate", "per_class", "seed", acc]]
    return out.rename(columns={"candidate": "backbone", acc: "accuracy"}).reset_index(drop=True)


def join_scores(scores: pd.DataFrame, accuracy: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """The body-feature scores of each (backbone, pool size, draw) beside the accuracy fine-tuning reached on that
    draw (seed s trains on draw s), for every backbone that has both."""
    body = scores[scores["cut"] == "body"].rename(columns={"draw": "seed"})
    return body[["backbone", "per_class", "seed", *names]].merge(accuracy, on=["backbone", "per_class", "seed"])


def _tau(score: np.ndarray, accuracy: np.ndarray) -> float:
    t = kendalltau(score, accuracy).statistic  # τ-b: ties in either ranking count as neither order
    return float(t) if np.isfinite(t) else math.nan


def tau_with_ci(table: pd.DataFrame, score: str, n_boot: int, confidence: float, seed: int = 0) -> dict:
    """τ of the per-backbone means over seeds, and its percentile CI from resampling the seeds with replacement
    (one resample for every backbone at once: seed s is one draw of the pool, shared by all of them)."""
    s = table.pivot(index="seed", columns="backbone", values=score)
    a = table.pivot(index="seed", columns="backbone", values="accuracy")
    keep = [b for b in s.columns if s[b].notna().any() and a[b].notna().any()]  # LEEP: none for a headless one
    both = s[keep].notna().all(axis=1) & a[keep].notna().all(axis=1)  # seeds every kept backbone has
    s, a = s.loc[both, keep], a.loc[both, keep]
    row = {"backbones": len(keep), "names": ", ".join(keep), "seeds": len(s), "tau": math.nan, "low": math.nan,
           "high": math.nan, "order_score": "", "order_accuracy": ""}
    if len(keep) < 3 or len(s) == 0:
        return row
    ms, ma = s.mean().to_numpy(), a.mean().to_numpy()
    row.update(tau=_tau(ms, ma), order_score=" > ".join(np.array(keep)[np.argsort(-ms, kind="stable")]),
               order_accuracy=" > ".join(np.array(keep)[np.argsort(-ma, kind="stable")]))
    rng = np.random.default_rng(seed)
    sv, av = s.to_numpy(), a.to_numpy()
    boots = np.array([_tau(sv[i].mean(0), av[i].mean(0))
                      for i in rng.integers(0, len(sv), size=(n_boot, len(sv)))])
    boots = boots[np.isfinite(boots)]  # a resample whose accuracies all tie has no order to agree with
    if len(boots):
        low, high = np.quantile(boots, [(1 - confidence) / 2, (1 + confidence) / 2])
        row.update(low=float(low), high=float(high))
    return row


def tau_table(joined: pd.DataFrame, names: list[str], n_boot: int, confidence: float) -> pd.DataFrame:
    rows = [{"per_class": int(n), "score": name, **tau_with_ci(g, name, n_boot, confidence)}
            for n, g in joined.groupby("per_class") for name in names]
    return pd.DataFrame(rows)


def rank_claims(taus: pd.DataFrame, strategy: str, confidence: float) -> list[Claim]:
    """One claim per score and pool size: holds when the CI of τ is above 0, does not hold when below it,
    inconclusive otherwise or with fewer than MIN_SEEDS seeds to resample. A pool size with fewer than 3
    backbones fine-tuned has no claim: the profile's design leaves it unjudgeable (unjudged_sizes says which)."""
    claims = []
    for r in taus.itertuples(index=False):
        label = SCORE_NAMES.get(r.score, r.score)
        statement = (f"The transferability score {label} ranks backbones as fine-tuning does "
                     f"({strategy} fine-tuning, n={r.per_class}/class)")
        key = f"transferability_{r.score}_ranks_backbones_n{r.per_class}"
        if r.backbones < 3:
            continue
        if math.isnan(r.tau):
            claims.append(Claim(key, statement, INCONCLUSIVE, f"Kendall τ undefined: the {label} scores or the "
                                f"accuracies of {r.names} all tie"))
            continue
        verdict = judge(Estimate(r.tau, r.low, r.high, r.seeds), 0.0) if r.seeds >= MIN_SEEDS else INCONCLUSIVE
        ci = (f"{confidence:.0%} bootstrap CI over seeds {r.low:+.2f} to {r.high:+.2f}" if not math.isnan(r.low)
              else "no CI: every resample ties")
        few = f"; {r.seeds} seeds are too few to resample (at least {MIN_SEEDS})" if r.seeds < MIN_SEEDS else ""
        evidence = (f"Kendall τ {r.tau:+.2f} ({ci}; {r.backbones} backbones, {r.seeds} seeds{few}); by {label}: "
                    f"{r.order_score}; by accuracy: {r.order_accuracy}")
        claims.append(Claim(key, statement, verdict, evidence))
    return claims


def unjudged_sizes(taus: pd.DataFrame) -> list[int]:
    """Pool sizes where fewer than 3 backbones have a score and an accuracy: no rank correlation, no claim."""
    return sorted(int(n) for n in taus.loc[taus["backbones"] < 3, "per_class"].unique())


def control_claims(scores: pd.DataFrame, names: list[str], control: str, random: str = "random",
                   confidence: float = 0.95) -> list[Claim]:
    """Per score: does it rank the permuted-pixel control below every backbone pre-trained on real images (the
    random-init candidate aside), at every pool size? Judged on paired CIs over draws of (backbone − control):
    holds when every one lies above 0, does not hold when one lies below 0 (a real backbone scores significantly
    below the control), inconclusive otherwise (a control that ties a backbone as weak as src-300 within the noise
    decides nothing either way)."""
    body = scores[scores["cut"] == "body"]
    if control not in set(body["backbone"]):
        return []
    claims = []
    for name in names:
        label = SCORE_NAMES.get(name, name)
        table = body[body["backbone"] != random].pivot_table(index=["per_class", "draw"], columns="backbone",
                                                            values=name).dropna(axis=1, how="all")
        statement = (f"The transferability score {label} ranks the permuted-pixel control below every backbone "
                     "pre-trained on real images")
        key = f"transferability_{name}_control_last"
        if control not in table.columns or table.shape[1] < 2:
            claims.append(Claim(key, statement, INCONCLUSIVE, f"no {label} score of the control beside another "
                                "backbone's"))
            continue
        others = table.drop(columns=control)
        last_draw = table[control] < others.min(axis=1)
        means = table.groupby(level="per_class").mean()
        last_mean = means[control] < means.drop(columns=control).min(axis=1)
        below, unsure = {}, {}  # pool size -> real backbones significantly below the control / within noise of it
        for n, cells in table.groupby(level="per_class"):
            for b in others.columns:
                est = paired_difference(cells[b], cells[control], confidence)
                if est.n > 1 and est.high < 0:
                    below.setdefault(int(n), []).append(f"{b} ({est.mean:+.3g}, CI {est.low:+.3g} to {est.high:+.3g})")
                elif not (est.n > 1 and est.low > 0):
                    unsure.setdefault(int(n), []).append(b)
        verdict = FAILS if below else INCONCLUSIVE if unsure else HOLDS
        above = {int(n): [b for b in means.columns if b != control and means.loc[n, b] <= means.loc[n, control]]
                 for n in means.index}
        beaten = "; ".join(f"n={n}: at or below it {', '.join(v)}" for n, v in above.items() if v)
        significant = "; ".join(f"n={n}: significantly below it {', '.join(v)}" for n, v in below.items())
        claims.append(Claim(key, statement, verdict,
                            f"last at {int(last_mean.sum())} of {len(last_mean)} pool sizes (mean over draws) and "
                            f"in {int(last_draw.sum())} of {len(last_draw)} (pool size, draw) cells, among "
                            f"{table.shape[1]} backbones" + (f"; {beaten}" if beaten else "")
                            + (f"; {significant}" if significant else "")
                            + "".join(f"; n={n}: not significantly above it {', '.join(v)}"
                                      for n, v in unsure.items() if not below)))
    return claims


def summary_metrics(taus: pd.DataFrame, timing: pd.DataFrame) -> dict:
    """DVC metrics: τ and its CI per pool size and score, and each candidate's wall seconds."""
    out: dict = {}
    for r in taus.itertuples(index=False):
        out.setdefault(f"n{r.per_class}", {})[r.score] = {
            k: None if math.isnan(v) else round(float(v), 4) for k, v in (("tau", r.tau), ("low", r.low),
                                                                          ("high", r.high))}
    out["seconds"] = {t.backbone: float(t.seconds) for t in timing.itertuples(index=False)}
    return out
