"""metrics/summary.json: the few numbers DVC shows, from the stages' metrics and the report's claims."""
from transferlab.analysis.claims import FAILS, HOLDS, INCONCLUSIVE, Claim
from transferlab.report.summary import summary

EVALUATE = {"n1": {"best_transfer_accuracy": 0.7361, "gain_vs_scratch": 0.35123}, "n50": {"best_transfer_accuracy": 0.967},
            "n10": {"best_transfer_accuracy": 0.9}, "ablation_src-100": {"n1": 0.2}}
AUDIO = {"pos5": {"best_transfer": "full", "full": {"frr_at_far1": 0.9}},
         "pos100": {"best_transfer": "head", "head": {"frr_at_far1": 0.51}, "full": {"frr_at_far1": 0.6}}}
TRANSFERABILITY = {"n5": {"logme": {"tau": 0.2}}, "n50": {"logme": {"tau": 0.73}, "leep": {"tau": 0.5}}}


def _claims(*verdicts):
    return [Claim(f"k{i}", "s", v, "e") for i, v in enumerate(verdicts)]


def test_summary_takes_the_smallest_and_largest_pool_the_most_positives_and_counts_verdicts():
    got = summary(EVALUATE, AUDIO, TRANSFERABILITY, _claims(HOLDS, HOLDS, FAILS, INCONCLUSIVE))
    # pools sorted as numbers (n10 < n50), not as strings; the best audio strategy at 100 positives is head
    assert got == {"acc_small": 0.7361, "acc_large": 0.967, "gain_small": 0.3512, "frr": 0.51, "tau": 0.73,
                   "holds": 2, "fails": 1, "unsure": 1}


def test_an_experiment_that_did_not_run_is_left_out_not_written_as_zero():
    got = summary({}, {}, {}, _claims(HOLDS))
    assert got == {"holds": 1, "fails": 0, "unsure": 0}
