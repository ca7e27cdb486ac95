"""The course's claims (transfer helps when B is small; retrain more of the network with more B), each judged from the measured runs — never hard-coded."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import pandas as pd

from transferlab.params.base import DEEP_STRATEGIES, SHALLOW_STRATEGIES, TRANSFER_STRATEGIES, labels_in
from transferlab.analysis.stats import Estimate, paired_difference

HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive"


@dataclass(frozen=True)
class Claim:
    key: str
    statement: str
    verdict: str
    evidence: str

    def as_dict(self) -> dict:
        return {"key": self.key, "claim": self.statement, "verdict": self.verdict, "evidence": self.evidence}


SIZE_KEYS = ("per_class", "size")  # how runs tables name the amount of training data of an arm


def capped_arm(runs: pd.DataFrame | None, arms: list[Mapping]) -> str | None:
    """Why a comparison of these arms (column → value selections of `runs`) cannot be judged: the first arm with a
    run that stopped at its cap without converging (runs tables say so in `stopped`), or None."""
    if runs is None or "stopped" not in runs:
        return None
    for arm in arms:
        sel = runs
        for column, value in arm.items():
            sel = sel[sel[column] == value]
        capped = sel[sel["stopped"] == "cap"]
        if len(capped):
            name = " ".join(str(v) for k, v in arm.items() if k not in SIZE_KEYS and v != "")
            size = next((f" at n={arm[k]}" for k in SIZE_KEYS if k in arm), "")
            cap = int(capped["cap_steps"].max()) if "cap_steps" in capped else int(capped["steps"].max())
            return (f"under-trained: {name}{size} stopped at its cap of {cap} steps in {len(capped)} of {len(sel)} "
                    f"runs")
    return None


def guard(claim: Claim, runs: pd.DataFrame | None, arms: list[Mapping]) -> Claim:
    """A claim whose compared arms include one that hit its cap is inconclusive, never holds or does not hold:
    its verdict could be the budget's, not the method's."""
    reason = capped_arm(runs, arms)
    return claim if reason is None else Claim(claim.key, claim.statement, INCONCLUSIVE,
                                              f"{reason}; {claim.evidence}")


def arm(backbone: str, strategy: str, n: int) -> dict:
    """A vision or audio sweep arm, as capped_arm selects it."""
    return {"backbone": backbone, "strategy": strategy, "per_class": n}


def strategy_diff(runs: pd.DataFrame, a: tuple[str, str], b: tuple[str, str], n: int, confidence: float,
                  metric: str = "accuracy") -> Estimate | None:
    """Paired difference of a metric, a − b, at pool size n (seeds share the data draw)."""
    def acc(key):
        sel = runs[(runs["backbone"] == key[0]) & (runs["strategy"] == key[1]) & (runs["per_class"] == n)]
        return sel.set_index("seed")[metric]
    x, y = acc(a), acc(b)
    seeds = sorted(set(x.index) & set(y.index))
    return paired_difference(x.loc[seeds], y.loc[seeds], confidence) if seeds else None


def judge(d: Estimate | None, min_effect: float) -> str:
    """Positive difference → holds; negative → does not hold; CI across zero or tiny → inconclusive."""
    if d is None or d.n < 2:
        return INCONCLUSIVE
    if d.low > 0 and d.mean >= min_effect:
        return HOLDS
    if d.high < 0 and d.mean <= -min_effect:
        return FAILS
    return INCONCLUSIVE


def pct(d: Estimate, unit: str = "seeds") -> str:
    return f"{d.mean * 100:+.1f} pp (95% CI {d.low * 100:+.1f} to {d.high * 100:+.1f}, {d.n} {unit})"


def best_strategy(runs: pd.DataFrame, backbone: str, strategies: list[str], n: int, metric: str = "accuracy",
                  lower_is_better: bool = False) -> str | None:
    sel = runs[(runs["backbone"] == backbone) & (runs["per_class"] == n) & runs["strategy"].isin(strategies)]
    if sel.empty:
        return None
    means = sel.groupby("strategy")[metric].mean()
    return str(means.idxmin() if lower_is_better else means.idxmax())


# The refinements of full fine-tuning, each claimed (by its paper) to beat it when the target has little data.
BEATS_FULL = {
    "lp_ft_beats_full_when_small": ("lp_ft", "Training the new head on the frozen body first (LP-FT) beats plain "
                                             "full fine-tuning when B is small"),
    "l2_sp_beats_full_when_small": ("l2_sp", "Pulling the weights towards the pre-trained ones (L2-SP) beats plain "
                                             "full fine-tuning when B is small"),
    "surgical_beats_full_when_small": ("surgical", "Fine-tuning one block (surgical) beats fine-tuning them all "
                                                   "when B is small"),
    "wise_ft_beats_full_when_small": ("wise_ft", "Mixing pre-trained and fine-tuned weights (WiSE-FT) beats the "
                                                 "fine-tuned model when B is small"),
}


def judge_claims(runs: pd.DataFrame, *, main: str, confidence: float = 0.95, min_effect: float = 0.01) -> list[Claim]:
    sizes = sorted(runs["per_class"].unique())
    small, large = int(sizes[0]), int(sizes[-1])
    have = set(runs[runs["backbone"] == main]["strategy"])
    transfer, shallow, deep = (labels_in(g, have) for g in (TRANSFER_STRATEGIES, SHALLOW_STRATEGIES, DEEP_STRATEGIES))
    claims: list[Claim] = []

    def add(key, statement, d, what, a, b, n):
        verdict = judge(d, min_effect)
        claims.append(guard(Claim(key, statement, verdict, f"{what}: {pct(d)}" if d is not None else f"{what}: no runs"),
                            runs, [arm(main, a, n), arm(main, b, n)]))

    if "scratch" in have and transfer:
        best_small = best_strategy(runs, main, transfer, small)
        d_small = strategy_diff(runs, (main, best_small), (main, "scratch"), small, confidence)
        add("transfer_helps_small_data", "Pre-training on A then fine-tuning beats training on B alone when B is small",
            d_small, f"n={small}/class, {best_small} − scratch", best_small, "scratch", small)
        best_large = best_strategy(runs, main, transfer, large)
        d_large = strategy_diff(runs, (main, best_large), (main, "scratch"), large, confidence)
        if d_small is not None and d_large is not None and d_small.n >= 2:
            shrink = Estimate(d_small.mean - d_large.mean, d_small.low - d_large.high, d_small.high - d_large.low,
                              d_small.n)  # conservative: intervals must separate
            verdict = judge(shrink, min_effect)
            claims.append(guard(Claim("gain_shrinks_with_data", "The gain from transfer shrinks as B grows", verdict,
                                      f"gain at n={small}: {pct(d_small)}; at n={large}: {pct(d_large)}"), runs,
                                [arm(main, best_small, small), arm(main, "scratch", small),
                                 arm(main, best_large, large), arm(main, "scratch", large)]))
        if "head" in have:
            add("source_features_transfer", "Features learned on A help B (a new head on the frozen body beats "
                "scratch at small n)", strategy_diff(runs, (main, "head"), (main, "scratch"), small, confidence),
                f"n={small}/class, head − scratch", "head", "scratch", small)
    if shallow and deep:
        s_best, d_best = best_strategy(runs, main, shallow, small), best_strategy(runs, main, deep, small)
        add("retrain_last_layers_when_small", "With little B data, retrain only the new last layer(s)",
            strategy_diff(runs, (main, s_best), (main, d_best), small, confidence),
            f"n={small}/class, {s_best} − {d_best}", s_best, d_best, small)
        s_best, d_best = best_strategy(runs, main, shallow, large), best_strategy(runs, main, deep, large)
        add("retrain_all_when_large", "With more B data, retrain all layers",
            strategy_diff(runs, (main, d_best), (main, s_best), large, confidence),
            f"n={large}/class, {d_best} − {s_best}", d_best, s_best, large)
    if "full" in have:
        for key, (strategy, statement) in BEATS_FULL.items():
            labels = labels_in((strategy,), have)
            if labels:  # only when the sweep ran it; of several wise_ft α, the best at this n
                best = best_strategy(runs, main, labels, small)
                kind = "α" if strategy == "wise_ft" else "blocks"
                picked = f" (best of {len(labels)} {kind})" if len(labels) > 1 else ""
                add(key, statement, strategy_diff(runs, (main, best), (main, "full"), small, confidence),
                    f"n={small}/class, {best} − full{picked}", best, "full", small)
    surgical = labels_in(("surgical",), have)
    if "surgical@last" not in surgical and "last_k" in have:
        surgical.append("last_k")  # the sweep ran surgical@last once, as last_k (finetune.surgical_blocks)
    if "surgical@first" in surgical and len(surgical) > 1:
        later = best_strategy(runs, main, [x for x in surgical if x != "surgical@first"], small)
        add("surgical_first_block_best", "The best single block to fine-tune for this shift is the first one "
            "(an input-level shift, as printed → handwritten: Lee et al. 2023)",
            strategy_diff(runs, (main, "surgical@first"), (main, later), small, confidence),
            f"n={small}/class, surgical@first − {later}", "surgical@first", later, small)
    return claims


def backbone_claims(runs: pd.DataFrame, main: str, others: list[str], strategy: str, confidence: float,
                    min_effect: float, metric: str = "accuracy", lower_is_better: bool = False,
                    unit: str = "/class") -> list[Claim]:
    """One claim per other backbone (an imported one, say): it beats the main backbone under the same strategy,
    at the smallest and the largest pool, paired by seed (the same draws)."""
    sizes = sorted(runs["per_class"].unique())
    claims = []
    for other in others:
        for n in dict.fromkeys((int(sizes[0]), int(sizes[-1]))):
            d = strategy_diff(runs, (other, strategy), (main, strategy), n, confidence, metric)
            if d is not None and lower_is_better:  # a lower error is better: judge main − other
                d = Estimate(-d.mean, -d.high, -d.low, d.n)
            verdict = judge(d, min_effect)
            what = f"n={n}{unit}, {strategy}: {other} − {main}" + (" (lower is better, sign flipped)"
                                                                     if lower_is_better else "")
            claims.append(guard(Claim(f"backbone_{other}_beats_{main}_n{n}", f"Backbone {other} beats {main} "
                                      f"({strategy} fine-tuning, n={n}{unit})", verdict,
                                      f"{what}: {pct(d)}" if d is not None else f"{what}: no runs"),
                                runs, [arm(other, strategy, n), arm(main, strategy, n)]))
    return claims


def vision_claims(runs: pd.DataFrame, ablation_strategy: str, confidence: float, min_effect: float,
                  curve: set[str] = frozenset()) -> list[Claim]:
    """The vision claims from the evaluation's runs: the first backbone is the main one; every other one but the
    source-size curve's (`curve`: transferlab.analysis.sourcecurve judges those) is compared with it."""
    main = str(runs["backbone"].iloc[0])
    others = [b for b in dict.fromkeys(runs["backbone"]) if b != main and b not in curve]
    return judge_claims(runs, main=main, confidence=confidence, min_effect=min_effect) + backbone_claims(
        runs, main, others, ablation_strategy, confidence, min_effect)


CLAIMS_FILE = "claims.json"  # what each experiment stage writes into its results dir; the report only reads it


def write_claims(path, claims: list[Claim], experiments: list[str] | None = None) -> None:
    """The claims as JSON; with `experiments` (one per claim), each says which experiment judged it (the report's
    metrics/claims.json, which the results page groups by it)."""
    from transferlab.system.io import write_json

    write_json(path, [{**c.as_dict(), **({"experiment": experiments[i]} if experiments else {})}
                      for i, c in enumerate(claims)])


def read_claims(path) -> list[Claim]:
    """Claims a stage judged and wrote as JSON (a list of Claim.as_dict())."""
    import json
    from pathlib import Path

    return [Claim(c["key"], c["claim"], c["verdict"], c["evidence"]) for c in json.loads(Path(path).read_text())]


def claims_by_experiment(path) -> dict[str, list[Claim]]:
    """The report's claims file grouped by the experiment that judged each claim; KeyError names a claim without
    one (a file written before claims said their experiment)."""
    import json
    from pathlib import Path

    out: dict[str, list[Claim]] = {}
    for c in json.loads(Path(path).read_text()):
        if "experiment" not in c:
            raise KeyError(f"claim {c.get('key')!r} names no experiment")
        out.setdefault(c["experiment"], []).append(Claim(c["key"], c["claim"], c["verdict"], c["evidence"]))
    return out
