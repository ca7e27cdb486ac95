"""The wake-word ceiling: the library and stage on tiny synthetic data, the multiples and their claims (a ceiling
FRR of 0 included), and how they reach the evaluation outputs, the report and the results page."""
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import save_file

from transferlab.system.context import Runtime
from transferlab.experiments.wakeword.ceiling import KINDS, training_set
from transferlab.experiments.wakeword.claims import ceiling_claims, wake_word_claims
from transferlab.experiments.wakeword.evaluate import ceiling_multiples, summary
from transferlab.analysis.curves import learning_curves
from transferlab.params import AudioEvaluateParams, AudioPrepareParams, Params

WORDS = ["yes", "no", "left", "right"]
TINY = {"seed": 0, "voices": {"languages": ["en", "de"]},
        "source": {"clips": 40, "val_fraction": 0.25, "words": WORDS},
        "target": {"positives_train": 6, "positives_test": 5, "negatives_train": 10, "negatives_test": 12,
                   "pool_sizes": [2, 6], "negatives_per_pool": 8, "pool_draws": 2}}


@pytest.fixture(scope="module")
def tiny_project(tmp_path_factory):
    """A prepared tiny target, a tiny pre-trained audio_crnn and a params.yaml that names both's settings."""
    from transferlab.models.artifacts import make_card, save_model
    from transferlab.models.preprocessing import audio_preprocessing
    from transferlab.data.audio.build import prepare_audio
    from transferlab.models import create_model

    root = tmp_path_factory.mktemp("ceiling")
    prepare_audio(AudioPrepareParams.model_validate(TINY), root / "source", root / "target")
    torch.manual_seed(0)
    kwargs = {"widths": [4, 8, 8]}
    save_model(root / "backbone", create_model("audio_crnn", num_classes=len(WORDS), **kwargs),
               make_card(architecture={"name": "audio_crnn", "kwargs": kwargs}, classes=WORDS,
                         preprocessing=audio_preprocessing(16000, 16000)))
    params = {"runtime": {"device": "cpu", "threads": 1, "workers": 1},
              "audio": {"prepare": TINY, "finetune": {"seeds": 2}, "evaluate": {"focus_positives": 2},
                        "ceiling": {"positives": 9, "steps": 3, "batch_size": 8, "seed": 0, "seeds": 2}}}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


def test_the_ceiling_stage_trains_on_fresh_b_train_clips_and_scores_the_test_set(tiny_project):
    from stages import audio_ceiling

    root = tiny_project
    audio_ceiling.main(["--params", str(root / "params.yaml"), "--target", str(root / "target"),
                        "--backbone", str(root / "backbone"), "--out", str(root / "out")])
    result = json.loads((root / "out" / "ceiling.json").read_text())
    assert (result["positives"], result["negatives"], result["steps"], result["batch_size"]) == (9, 9, 3, 8)
    assert result["strategy"] == "full" and "B-train" in result["training_set"]
    assert (result["test_clips"], result["test_positives"]) == (17, 5)
    for key in ("frr_at_far1", "frr_at_far5", "auroc", "frr_at_threshold"):
        assert 0.0 <= result[key] <= 1.0, key
    assert result["train_seconds"] >= 0 and result["data_seconds"] >= 0 and result["far_targets"] == [0.01, 0.05]
    assert set(result["frr_by_negative_kind"]) <= set(KINDS)
    # One run per seed; the top-level scores are their mean, with its CI.
    assert [r["seed"] for r in result["runs"]] == [0, 1] and result["seeds"] == 2
    for key in ("frr_at_far1", "auroc"):
        values = [r[key] for r in result["runs"]]
        assert result[key] == pytest.approx(np.mean(values), abs=1e-5)
        assert result[f"{key}_low"] <= result[key] <= result[f"{key}_high"]
    assert result["stopped"] in {"converged", "cap"} and result["steps"] == max(r["steps"] for r in result["runs"])


def test_a_folder_target_is_its_own_ceiling_every_training_clip(tiny_project):
    """A user's folder cannot be synthesised more of: the ceiling trains on the whole prepared training split."""
    from transferlab.data.prepared import load_prepared

    target = load_prepared(tiny_project / "target")
    p = AudioPrepareParams.model_validate(TINY)
    folder = p.model_copy(update={"target": p.target.model_copy(update={"kind": "folder", "root": "x"})})
    x, y, origin = training_set(folder, target, 3000, Runtime())
    train = target.rows("train")
    assert len(y) == len(train) == 16 and int(y.sum()) == 6 and "training split" in origin
    assert torch.equal(x, target.samples[train])


def _curves(frr: dict[tuple[int, int], float], strategy: str = "full") -> pd.DataFrame:
    runs = pd.DataFrame([{"backbone": "audio", "strategy": strategy, "per_class": n, "seed": s, "frr_at_far1": v}
                         for (n, s), v in frr.items()])
    return learning_curves(runs, 0.95, ("frr_at_far1",))


CEILING = {"frr_at_far1": 0.2, "positives": 3000, "negatives": 3000, "steps": 300, "auroc": 0.99,
           "training_set": "synthesised, B-train voices only"}


def test_the_multiple_is_the_frr_and_its_ci_over_the_ceilings_frr():
    curves = _curves({(20, 0): 0.60, (20, 1): 0.65, (20, 2): 0.70, (100, 0): 0.30, (100, 1): 0.32, (100, 2): 0.34})
    curves = pd.concat([curves, _curves({(5, 0): 0.9, (5, 1): 0.95}, "scratch")], ignore_index=True)
    table = ceiling_multiples(curves, "frr_at_far1", CEILING, "full").set_index("per_class")
    assert list(table.index) == [5, 20, 100]  # every count swept; full has no runs at 5
    row = curves[(curves["strategy"] == "full") & (curves["per_class"] == 20)].iloc[0]
    assert table.loc[20, "multiple"] == pytest.approx(0.65 / 0.2, abs=1e-4)
    assert table.loc[20, "multiple_low"] == pytest.approx(row["frr_at_far1_low"] / 0.2, abs=1e-4)
    assert table.loc[20, "multiple_high"] == pytest.approx(row["frr_at_far1_high"] / 0.2, abs=1e-4)
    assert table.loc[5, "seeds"] == 0 and math.isnan(table.loc[5, "multiple"])
    assert (table["ceiling_positives"] == 3000).all() and (table["ceiling_frr"] == 0.2).all()


def test_the_ceilings_own_spread_widens_the_multiples_ci():
    curves = _curves({(100, 0): 0.30, (100, 1): 0.32, (100, 2): 0.34})
    one = ceiling_multiples(curves, "frr_at_far1", CEILING, "full").iloc[0]
    three = ceiling_multiples(curves, "frr_at_far1", {**CEILING, "seeds": 3, "frr_at_far1_low": 0.1,
                                                      "frr_at_far1_high": 0.3}, "full").iloc[0]
    assert three["multiple"] == pytest.approx(one["multiple"])
    assert three["multiple_low"] < one["multiple_low"] and three["multiple_high"] > one["multiple_high"]
    assert three["multiple_low"] >= 0 and three["ceiling_seeds"] == 3
    (claim,) = ceiling_claims(ceiling_multiples(curves, "frr_at_far1", {**CEILING, "seeds": 3, "frr_at_far1_low": 0.1,
                                                                         "frr_at_far1_high": 0.3}, "full"),
                              "frr_at_far1", 2.0)
    assert "mean of 3 runs" in claim.evidence


def test_ceiling_claims_are_judged_on_the_ci_of_the_multiple():
    # 100 positives: 1.5-1.7x the ceiling (all below 2x); 20: about 3.25x (all above); 50: straddles 2x.
    curves = _curves({(20, 0): 0.60, (20, 1): 0.65, (20, 2): 0.70, (100, 0): 0.30, (100, 1): 0.32, (100, 2): 0.34,
                      (50, 0): 0.2, (50, 1): 0.6, (50, 2): 0.4, (10, 0): 0.5})
    claims = {c.key: c for c in ceiling_claims(ceiling_multiples(curves, "frr_at_far1", CEILING, "full"),
                                               "frr_at_far1", 2.0)}
    assert claims["audio_ceiling_n100"].verdict == "holds"
    assert claims["audio_ceiling_n20"].verdict == "does not hold"
    assert claims["audio_ceiling_n50"].verdict == "inconclusive"
    assert claims["audio_ceiling_n10"].verdict == "inconclusive" and "1 runs" in claims["audio_ceiling_n10"].evidence
    assert "within 2× of the 3,000-positive ceiling" in claims["audio_ceiling_n100"].statement
    assert "1.60× the ceiling's 0.200" in claims["audio_ceiling_n100"].evidence
    # A looser bound turns the 20-positive row around: the rule, not the numbers, decides.
    loose = {c.key: c for c in ceiling_claims(ceiling_multiples(curves, "frr_at_far1", CEILING, "full"),
                                              "frr_at_far1", 4.0)}
    assert loose["audio_ceiling_n20"].verdict == "holds"


def test_a_ceiling_so_weak_that_the_claim_cannot_fail_gives_no_verdict():
    """FRR is at most 1: with a ceiling FRR of 0.6, every detector is within 2× of it, so that proves nothing."""
    curves = _curves({(20, 0): 0.60, (20, 1): 0.65, (20, 2): 0.70})
    table = ceiling_multiples(curves, "frr_at_far1", {**CEILING, "frr_at_far1": 0.6}, "full")
    (claim,) = ceiling_claims(table, "frr_at_far1", 2.0)
    assert claim.verdict == "inconclusive" and "any is within 2×" in claim.evidence
    (claim,) = ceiling_claims(table, "frr_at_far1", 1.5)  # 0.9 is a bound a detector can break
    assert claim.verdict == "holds"


def test_a_ceiling_that_rejects_nothing_gives_no_multiple_and_no_verdict():
    curves = _curves({(20, 0): 0.60, (20, 1): 0.65, (20, 2): 0.70, (100, 0): 0.0, (100, 1): 0.0, (100, 2): 0.0})
    with np.errstate(all="raise"):  # no division by zero anywhere on the way
        table = ceiling_multiples(curves, "frr_at_far1", {**CEILING, "frr_at_far1": 0.0}, "full")
        claims = ceiling_claims(table, "frr_at_far1", 2.0)
    assert table[["multiple", "multiple_low", "multiple_high"]].isna().all().all()
    assert [c.verdict for c in claims] == ["inconclusive", "inconclusive"]
    assert all("rejects no test positive" in c.evidence for c in claims)
    metrics = summary(curves.assign(auroc=0.9, fa_per_hour=1.0), AudioEvaluateParams(), table)
    assert metrics["pos20"]["ceiling"]["multiple"] is None
    json.dumps(metrics, allow_nan=False)  # valid JSON for dvc metrics


def test_reference_rows_only_when_the_user_sets_reference_frr():
    assert Params().audio.evaluate.reference_frr == {}
    curves = _curves({(20, 0): 0.60, (20, 1): 0.65, (20, 2): 0.70})
    runs = pd.DataFrame([{"backbone": "audio", "strategy": "full", "per_class": 20, "seed": s, "frr_at_far1": v}
                         for s, v in enumerate((0.6, 0.65, 0.7))])
    table = ceiling_multiples(curves, "frr_at_far1", CEILING, "full")
    keys = [c.key for c in wake_word_claims(runs, curves, AudioEvaluateParams(), 0.95, 0.01, table)]
    assert keys == ["audio_ceiling_n20"]
    mine = AudioEvaluateParams(reference_frr={20: 0.5})
    keys = [c.key for c in wake_word_claims(runs, curves, mine, 0.95, 0.01, table)]
    assert keys == ["audio_ceiling_n20", "audio_reference_n20"]


def _finetune_dir(path, labels: np.ndarray, frr_by_run: dict[str, float]):
    """A fine-tune results dir whose runs reject about the given share of positives at any low FAR."""
    path.mkdir(parents=True)
    rows, tensors = [], {"test_labels": torch.from_numpy(labels)}
    rng = np.random.default_rng(0)
    for run_id, frr in frr_by_run.items():
        backbone, strategy, n, seed = run_id.split("/")
        score = np.where(labels == 1, 2.0, -2.0) + rng.normal(0, 0.01, len(labels))
        positives = np.flatnonzero(labels == 1)
        score[positives[:int(round(frr * len(positives)))]] = -5.0  # rejected: below every negative
        tensors[run_id] = torch.from_numpy(np.stack([np.zeros_like(score), score], 1)).float()
        rows.append({"run_id": run_id, "backbone": backbone, "strategy": strategy, "per_class": int(n[1:]),
                     "seed": int(seed[1:])})
    pd.DataFrame(rows).to_csv(path / "runs.csv", index=False)
    save_file(tensors, str(path / "predictions.safetensors"))
    return path


def test_the_evaluation_stage_writes_multiples_claims_metrics_and_the_report_shows_them(tiny_project, tmp_path):
    from stages import audio_evaluate
    from transferlab.data.prepared import load_prepared
    from transferlab.report.audio import audio_section
    from transferlab.report.document import Document
    from transferlab.report.results_md import _audio

    root = tiny_project
    labels = load_prepared(root / "target").labels[load_prepared(root / "target").rows("test")].numpy()
    frr = {f"audio/{s}/n{n}/s{seed}": v + 0.2 * seed for s, base in (("scratch", 0.4), ("full", 0.0))
           for n, v in ((2, base + 0.4), (6, base + 0.2)) for seed in range(2)}
    finetune = _finetune_dir(tmp_path / "finetune", labels, frr)
    (tmp_path / "ceiling.json").write_text(json.dumps({**CEILING, "frr_at_far5": 0.1}))
    out = tmp_path / "evaluation"
    audio_evaluate.main(["--params", str(root / "params.yaml"), "--finetune", str(finetune), "--target",
                         str(root / "target"), "--ceiling", str(tmp_path / "ceiling.json"), "--out", str(out),
                         "--plots", str(tmp_path / "plots"), "--metrics", str(tmp_path / "audio.json")])
    table = pd.read_csv(out / "ceiling.csv").set_index("per_class")
    assert table.loc[6, "multiple"] == pytest.approx(table.loc[6, "frr"] / 0.2)
    claims = {c["key"]: c for c in json.loads((out / "claims.json").read_text())}
    assert {"audio_ceiling_n2", "audio_ceiling_n6"} <= set(claims)
    assert not any(k.startswith("audio_reference") for k in claims)  # none set
    metrics = json.loads((tmp_path / "audio.json").read_text())
    assert metrics["pos6"]["ceiling"]["ceiling_frr"] == 0.2 and metrics["pos6"]["ceiling"]["strategy"] == "full"
    doc = Document("r")
    card = {"classes": WORDS, "metrics": {"train_images": 30, "val_accuracy": 0.5}}
    audio_section(doc, out, AudioEvaluateParams(focus_positives=2), card, {"success": True}, "marvin")
    md = doc.markdown("figures")
    assert "fully fine-tuned on 3,000 positives and 3,000 negatives (synthesised, B-train voices only" in md
    assert f"{table.loc[6, 'multiple']:.2f}× [" in md and "within 2×" in md
    headlines = dict(_audio(metrics))
    assert headlines["ceiling"] == "full fine-tuning on 3,000 positives: frr_at_far1 20.0%"
    assert headlines["6 positives, full vs the ceiling"].startswith(f"frr_at_far1 {table.loc[6, 'multiple']:.2f}× ")
