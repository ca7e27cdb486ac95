"""Claims are judged from the numbers: holds, does not hold, or inconclusive when the CI spans zero."""
import pandas as pd

from transferlab.analysis.claims import FAILS, HOLDS, INCONCLUSIVE, backbone_claims, judge_claims, vision_claims


def _runs(table: dict) -> pd.DataFrame:
    """table[(backbone, strategy, n)] = accuracies by seed."""
    rows = [{"backbone": b, "strategy": s, "per_class": n, "seed": i, "accuracy": a}
            for (b, s, n), accs in table.items() for i, a in enumerate(accs)]
    return pd.DataFrame(rows)


def _verdicts(table, **kw):
    claims = judge_claims(_runs(table), main="src-full", **kw)
    return {c.key: c.verdict for c in claims}


def test_claims_follow_the_numbers():
    course_like = {
        ("src-full", "scratch", 1): [0.30, 0.35, 0.33], ("src-full", "head", 1): [0.70, 0.72, 0.69],
        ("src-full", "full", 1): [0.60, 0.64, 0.61],
        ("src-full", "scratch", 100): [0.96, 0.97, 0.96], ("src-full", "head", 100): [0.90, 0.91, 0.90],
        ("src-full", "full", 100): [0.98, 0.985, 0.98],
    }
    v = _verdicts(course_like)
    assert v["transfer_helps_small_data"] == HOLDS
    assert v["gain_shrinks_with_data"] == HOLDS
    assert v["source_features_transfer"] == HOLDS
    assert v["retrain_last_layers_when_small"] == HOLDS
    assert v["retrain_all_when_large"] == HOLDS

    transfer_hurts = {
        ("src-full", "scratch", 1): [0.50, 0.55, 0.52], ("src-full", "head", 1): [0.30, 0.34, 0.33],
        ("src-full", "full", 1): [0.40, 0.44, 0.42],
        ("src-full", "scratch", 100): [0.90, 0.92, 0.91], ("src-full", "head", 100): [0.95, 0.96, 0.955],
        ("src-full", "full", 100): [0.85, 0.86, 0.855],
    }
    v = _verdicts(transfer_hurts)
    assert v["transfer_helps_small_data"] == FAILS
    assert v["source_features_transfer"] == FAILS
    assert v["retrain_last_layers_when_small"] == FAILS
    assert v["retrain_all_when_large"] == FAILS


def test_noisy_results_are_inconclusive():
    noisy = {("src-full", "scratch", 1): [0.3, 0.6, 0.45], ("src-full", "head", 1): [0.6, 0.3, 0.46],
             ("src-full", "full", 1): [0.5, 0.4, 0.45], ("src-full", "scratch", 5): [0.5, 0.8, 0.6],
             ("src-full", "head", 5): [0.8, 0.5, 0.62], ("src-full", "full", 5): [0.6, 0.7, 0.6]}
    v = _verdicts(noisy)
    assert set(v.values()) == {INCONCLUSIVE}


def test_refinements_of_full_are_claimed_only_when_swept():
    base = {("src-full", "scratch", 1): [0.30, 0.35, 0.33], ("src-full", "full", 1): [0.60, 0.64, 0.61],
            ("src-full", "scratch", 5): [0.50, 0.55, 0.53], ("src-full", "full", 5): [0.80, 0.84, 0.81]}
    assert not any(k.endswith("_beats_full_when_small") for k in _verdicts(base))
    swept = {**base, ("src-full", "lp_ft", 1): [0.70, 0.73, 0.70], ("src-full", "l2_sp", 1): [0.50, 0.55, 0.52],
             ("src-full", "wise_ft@0.5", 1): [0.60, 0.65, 0.60], ("src-full", "wise_ft@0.8", 1): [0.66, 0.70, 0.67]}
    v = _verdicts(swept)
    assert v["lp_ft_beats_full_when_small"] == HOLDS and v["l2_sp_beats_full_when_small"] == FAILS
    assert v["wise_ft_beats_full_when_small"] == HOLDS  # the better α, 0.8
    assert "surgical_beats_full_when_small" not in v
    evidence = {c.key: c.evidence for c in judge_claims(_runs(swept), main="src-full")}
    assert "wise_ft@0.8 − full (best of 2 α)" in evidence["wise_ft_beats_full_when_small"]
    # wise_ft rows count as deep strategies in the shallow/deep comparison (no shallow ones here: none judged).
    assert "retrain_last_layers_when_small" not in v


def test_surgical_blocks_are_compared_and_the_first_judged_against_the_best_later_one():
    base = {("src-full", "scratch", 1): [0.30, 0.35, 0.33], ("src-full", "full", 1): [0.60, 0.64, 0.61],
            ("src-full", "surgical@first", 1): [0.70, 0.72, 0.71], ("src-full", "surgical@middle", 1): [0.60, 0.62, 0.61],
            ("src-full", "surgical@last", 1): [0.64, 0.66, 0.66]}
    claims = {c.key: c for c in judge_claims(_runs(base), main="src-full")}
    assert claims["surgical_first_block_best"].verdict == HOLDS
    assert "surgical@first − surgical@last" in claims["surgical_first_block_best"].evidence
    assert "best of 3 blocks" in claims["surgical_beats_full_when_small"].evidence
    base[("src-full", "surgical@last", 1)] = [0.80, 0.82, 0.81]
    v = _verdicts(base)
    assert v["surgical_first_block_best"] == FAILS


def test_an_imported_backbone_is_judged_against_the_main_one_at_the_smallest_and_largest_pool():
    table = {("src-full", "scratch", 1): [0.30, 0.35, 0.33], ("src-full", "full", 1): [0.60, 0.64, 0.61],
             ("src-full", "scratch", 50): [0.90, 0.91, 0.90], ("src-full", "full", 50): [0.95, 0.96, 0.95],
             ("src-300", "full", 50): [0.90, 0.92, 0.91], ("permuted", "full", 50): [0.90, 0.92, 0.91],
             ("rn18", "full", 1): [0.80, 0.83, 0.81], ("rn18", "full", 50): [0.95, 0.96, 0.95]}
    claims = {c.key: c for c in vision_claims(_runs(table), "full", 0.95, 0.01, curve={"src-300", "permuted"})}
    assert claims["backbone_rn18_beats_src-full_n1"].verdict == HOLDS
    assert claims["backbone_rn18_beats_src-full_n50"].verdict == INCONCLUSIVE  # equal accuracies
    # The source-size curve's backbones are judged by transferlab.analysis.sourcecurve, not against the main one.
    assert not any("src-300" in k or "permuted" in k for k in claims)
    # Lower-is-better metrics (a false-reject rate) flip the sign: the lower rate wins.
    frr = _runs({("audio", "full", 5): [0.50, 0.55, 0.52], ("silero", "full", 5): [0.30, 0.33, 0.31]})
    frr = frr.rename(columns={"accuracy": "frr"})
    (claim,) = backbone_claims(frr, "audio", ["silero"], "full", 0.95, 0.01, metric="frr", lower_is_better=True,
                               unit=" positives")
    assert claim.verdict == HOLDS and "n=5 positives" in claim.statement


def test_a_claim_whose_arm_hit_its_cap_is_inconclusive_and_names_the_arm():
    clear = {("src-full", "scratch", 1): [0.30, 0.35, 0.33], ("src-full", "head", 1): [0.70, 0.72, 0.69],
             ("src-full", "scratch", 100): [0.96, 0.97, 0.96], ("src-full", "head", 100): [0.90, 0.91, 0.90]}
    runs = _runs(clear).assign(stopped="converged", steps=40, cap_steps=500)
    claims = {c.key: c for c in judge_claims(runs, main="src-full")}
    assert claims["transfer_helps_small_data"].verdict == HOLDS
    # The same numbers, but scratch at n=1 ran out of steps in one seed: the verdict could be the budget's.
    capped = runs.copy()
    capped.loc[(capped["strategy"] == "scratch") & (capped["per_class"] == 1) & (capped["seed"] == 2),
               ["stopped", "steps"]] = ["cap", 500]
    claims = {c.key: c for c in judge_claims(capped, main="src-full")}
    for key in ("transfer_helps_small_data", "source_features_transfer", "gain_shrinks_with_data"):
        assert claims[key].verdict == INCONCLUSIVE
        assert claims[key].evidence.startswith("under-trained: src-full scratch at n=1 stopped at its cap of 500 steps")


def test_surgical_last_is_last_k_and_runs_once():
    from transferlab.experiments.transfer.finetune import plan_runs, surgical_blocks
    from transferlab.params import FinetuneParams

    cfg = FinetuneParams(strategies=["last_k", "surgical"], seeds=1)
    assert surgical_blocks(cfg) == ["first", "middle"]
    labels = {r.label for r in plan_runs(cfg, [1], ["full"])}
    assert labels == {"last_k", "surgical@first", "surgical@middle"}
    # With last_k 2 (or no last_k arm) the last block alone is another arm.
    assert surgical_blocks(cfg.model_copy(update={"last_k": 2})) == ["first", "middle", "last"]
    # The first block is then judged against the best later one, last_k standing for the last block.
    table = {("src-full", "scratch", 1): [0.30, 0.35, 0.33], ("src-full", "full", 1): [0.60, 0.64, 0.61],
             ("src-full", "surgical@first", 1): [0.70, 0.72, 0.71], ("src-full", "surgical@middle", 1): [0.60, 0.62, 0.61],
             ("src-full", "last_k", 1): [0.80, 0.82, 0.81]}
    claims = {c.key: c for c in judge_claims(_runs(table), main="src-full")}
    assert "surgical@first − last_k" in claims["surgical_first_block_best"].evidence
    assert claims["surgical_first_block_best"].verdict == FAILS
