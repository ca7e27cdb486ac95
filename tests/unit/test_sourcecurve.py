"""The source-size curve: nested class-balanced sources, the pixel-permuted control, fine-tuning the curve at its
two target sizes only, and claims that read the curve (never hard-coded)."""
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from transferlab.system.context import Runtime
from transferlab.analysis.claims import FAILS, HOLDS, INCONCLUSIVE
from transferlab.experiments.transfer.finetune import plan_runs
from transferlab.params import ParamsError, load_params, parse_params
from transferlab.experiments.pretraining.source import PixelPermuted, nested_subset
from transferlab.experiments.transferability.rankcheck import control_claims
from transferlab.analysis.sourcecurve import curve_claims, curve_table, significant_from

SMOKE = "profiles/smoke.yaml"


def test_nested_subsets_are_class_balanced_and_each_smaller_one_is_inside_the_larger():
    labels = np.repeat(np.arange(10), 50)  # sorted by class: a plain prefix would be one class
    rows = np.arange(len(labels))
    small, large = nested_subset(labels, rows, 30, seed=0), nested_subset(labels, rows, 200, seed=0)
    assert np.bincount(labels[small], minlength=10).tolist() == [3] * 10
    assert np.bincount(labels[large], minlength=10).tolist() == [20] * 10
    assert set(small) <= set(large)
    assert not np.array_equal(nested_subset(labels, rows, 30, seed=1), small)  # seeded, not fixed


def test_the_control_sees_every_image_under_one_fixed_permutation_of_its_pixels():
    seen = []

    class Spy(nn.Module):
        def forward(self, x):
            seen.append(x)
            return x.flatten(1)

    wrapped = PixelPermuted(Spy(), (4, 4), seed=0)
    x = torch.arange(2 * 3 * 16, dtype=torch.float32).view(2, 3, 4, 4)
    wrapped(x)
    wrapped(x + 1)
    out = seen[0]
    perm = wrapped.perm
    assert sorted(perm.tolist()) == list(range(16)) and perm.tolist() != list(range(16))
    for image in range(2):
        for channel in range(3):  # one permutation for every channel and image
            assert torch.equal(out[image, channel].flatten(), x[image, channel].flatten()[perm])
    assert torch.equal(seen[1], out + 1)
    assert torch.equal(PixelPermuted(Spy(), (4, 4), seed=0).perm, perm)  # the same seed, the same permutation
    assert "perm" not in wrapped.state_dict()  # rebuilt from the seed, never saved with the backbone


def test_the_curve_backbones_run_the_ablation_strategy_at_their_pool_sizes_only():
    cfg = load_params(SMOKE).finetune
    specs = plan_runs(cfg, [1, 5], ["src-full", "src-100", "permuted", "imp"], {"src-100": [5], "permuted": [5]})
    by = {}
    for s in specs:
        by.setdefault(s.backbone, set()).add((s.strategy, s.per_class))
    assert by["src-100"] == by["permuted"] == {("full", 5)}
    assert by["imp"] == {("full", 1), ("full", 5)}  # an imported backbone keeps every pool size
    assert {n for _, n in by["src-full"]} == {1, 5} and len({s for s, _ in by["src-full"]}) == len(cfg.strategies)


def test_params_name_the_curve_backbones_and_reject_bad_sizes():
    params = load_params(SMOKE)
    assert params.track_backbones("vision")[:4] == ["src-full", "src-100", "src-400", "permuted"]
    with pytest.raises(ParamsError, match="pretrain.source_sizes"):
        parse_params({"pretrain": {"source_sizes": [1000, 300]}})
    # The curve's sizes are those the sweep has, else every pool size.
    def sizes(pool_sizes):
        return parse_params({"prepare": {"target": {"pool_sizes": pool_sizes}}, "distill": {"per_class": None},
                             "evaluate": {"focus_per_class": pool_sizes[-1]}}).curve_pool_sizes()

    assert sizes([1, 5, 20]) == [5] and sizes([1, 3]) == [1, 3]
    assert parse_params({"finetune": {"curve_pool_sizes": [7]}}).curve_pool_sizes() == [1, 5, 10, 50]
    with pytest.raises(ParamsError, match="small_source_size"):  # the old ablation's key is gone, said by name
        parse_params({"pretrain": {"small_source_size": 300}})
    with pytest.raises(ParamsError, match="src-300"):  # an import may not take a curve backbone's name
        parse_params({"backbones": [{"name": "src-300", "kind": "file", "arch": "resnet18", "path": "x.pt"}]})
    # The backbones' old names (full, src300) are refused with the new name offered, never taken as another model.
    with pytest.raises(ParamsError, match="did you mean 'src-full'"):
        parse_params({"finetune": {"main_backbone": "full"}})
    with pytest.raises(ParamsError, match="did you mean 'src-300'"):
        parse_params({"finetune": {"main_backbone": "src300"}})
    with pytest.raises(ParamsError, match="full"):
        parse_params({"backbones": [{"name": "full", "kind": "file", "arch": "resnet18", "path": "x.pt"}]})


def _runs(gains: dict[str, float], n: int, spread=(0.0, 0.01, -0.01)) -> pd.DataFrame:
    """scratch at 0.5 + noise; each backbone's full run = scratch + its gain + its own noise."""
    rows = []
    for seed, e in enumerate(spread):
        rows.append({"backbone": "src-full", "strategy": "scratch", "per_class": n, "seed": seed, "accuracy": 0.5 + e})
        for b, g in gains.items():
            rows.append({"backbone": b, "strategy": "full", "per_class": n, "seed": seed,
                         "accuracy": 0.5 + g + e + 0.002 * seed})
    return pd.DataFrame(rows)


IMAGES = {"src-300": 300, "src-1000": 1000, "src-3000": 3000, "src-full": 26600, "permuted": 26600}


def _judge(gains: dict[str, float], n: int = 50):
    runs = _runs(gains, n)
    table = curve_table(runs, IMAGES, "src-full", "full", num_classes=10, confidence=0.95)
    return table, {c.key: c for c in curve_claims(runs, table, "src-full", 0.01, 0.95)}


def test_the_curve_table_pairs_each_source_with_scratch():
    table, _ = _judge({"src-300": 0.0, "src-1000": 0.03, "src-3000": 0.05, "src-full": 0.08, "permuted": -0.01})
    curve = table[~table["control"]]
    assert list(curve["source_images"]) == [300, 1000, 3000, 26600]
    assert curve["gain"].round(3).tolist() == [0.002, 0.032, 0.052, 0.082]
    assert (table["target_images"] == 500).all() and table["control"].sum() == 1
    assert significant_from(table, 0.01) == 1000


def test_curve_claims_follow_where_the_gain_becomes_significant():
    # Significant only from 1,000 images, twice B's 500: holds; the control gains nothing: holds.
    _, claims = _judge({"src-300": 0.0, "src-1000": 0.03, "src-3000": 0.05, "src-full": 0.08, "permuted": -0.01})
    assert claims["source_size_n50"].verdict == HOLDS and "1,000 source images (2.0× B)" in \
        claims["source_size_n50"].evidence
    assert claims["permuted_control_n50"].verdict == HOLDS
    # A source as small as 300 images (less than B) already helps: the claim does not hold.
    _, claims = _judge({"src-300": 0.04, "src-1000": 0.05, "src-3000": 0.06, "src-full": 0.08, "permuted": 0.06})
    assert claims["source_size_n50"].verdict == FAILS
    assert claims["permuted_control_n50"].verdict == FAILS  # the control gains as much as a real source
    # Every source tried is already larger than B (n=5/class: 50 images) and helps: nothing as small as B was tried.
    _, claims = _judge({"src-300": 0.04, "src-1000": 0.05, "src-3000": 0.06, "src-full": 0.08, "permuted": 0.0}, n=5)
    assert claims["source_size_n5"].verdict == INCONCLUSIVE and "no source as small as B" in \
        claims["source_size_n5"].evidence
    # No source gains: inconclusive, said so.
    _, claims = _judge({"src-300": 0.0, "src-1000": 0.0, "src-3000": 0.0, "src-full": 0.0, "permuted": 0.0})
    assert claims["source_size_n50"].verdict == INCONCLUSIVE and "no source size" in claims["source_size_n50"].evidence


def test_scores_are_checked_for_ranking_the_control_last():
    def scores(control_value):
        rows = [{"backbone": b, "cut": "body", "per_class": n, "draw": d, "logme": v + 0.01 * d}
                for n in (1, 5) for d in range(3)
                for b, v in (("src-full", 0.9), ("src-300", 0.5), ("permuted", control_value), ("random", 0.1))]
        return pd.DataFrame(rows)

    (claim,) = control_claims(scores(0.2), ["logme"], "permuted")
    assert claim.verdict == HOLDS and "last at 2 of 2 pool sizes" in claim.evidence
    (claim,) = control_claims(scores(0.7), ["logme"], "permuted")  # above src-300: not last
    assert claim.verdict == FAILS and "src-300" in claim.evidence
    assert control_claims(scores(0.2)[lambda f: f["backbone"] != "permuted"], ["logme"], "permuted") == []
    # Above src-300 on average but within the noise of 3 draws: no verdict either way.
    noisy = scores(0.5)
    noisy.loc[noisy["backbone"] == "permuted", "logme"] += [0.05, -0.04, 0.02, 0.06, -0.05, 0.01]
    (claim,) = control_claims(noisy, ["logme"], "permuted")
    assert claim.verdict == INCONCLUSIVE and "not significantly above it src-300" in claim.evidence


def test_the_report_plots_the_curve_with_the_control_and_tabulates_the_gains(tmp_path):
    from transferlab.report.document import Document
    from transferlab.report.sourcecurve import source_curve_part
    from transferlab.analysis.sourcecurve import SOURCE_CURVE_FILE

    table, _ = _judge({"src-300": 0.0, "src-1000": 0.03, "src-3000": 0.05, "src-full": 0.08, "permuted": -0.01})
    table.to_csv(tmp_path / SOURCE_CURVE_FILE, index=False)
    doc = Document("r")
    doc.section("vision", "v", [])
    source_curve_part(doc, tmp_path)
    html, md = doc.html(), doc.markdown("figures")
    assert "source-size curve" in html and "source_curve" in md
    assert "permuted (26,600 images, permuted)" in md and "| 3.2 [" in md
    empty = Document("r")
    empty.section("vision", "v", [])
    source_curve_part(empty, tmp_path / "none")  # no curve was run: nothing is added, nothing fails
    assert "source-size curve" not in empty.html()


def test_a_small_source_validates_and_checkpoints_every_few_epochs_not_every_epoch(tmp_path, smoke_params,
                                                                                    monkeypatch):
    """300 images are 2 steps an epoch: a validation pass and a checkpoint each epoch cost more than the training.
    At most LOG_POINTS rows, passes and checkpoints, at whole epochs; the last step is always logged."""
    from transferlab.experiments.pretraining import source as pt
    from transferlab.models.preprocessing import image_preprocessing
    from transferlab.data.prepared import holdout_split, load_prepared, save_prepared
    from transferlab.data.sources import ImageSet

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 12)
    images = rng.integers(0, 255, (48, 1, 28, 28), dtype=np.uint8)
    save_prepared(tmp_path / "source", ImageSet(images, labels, list("abcd"), [f"s{i}" for i in range(48)]),
                  holdout_split(48, 0.25, 0))
    passes, saves = [], []
    predict, save = pt.predict_logits, pt.TrainConfig
    monkeypatch.setattr(pt, "predict_logits", lambda *a, **k: passes.append(1) or predict(*a, **k))
    monkeypatch.setattr(pt, "TrainConfig", lambda **k: saves.append(k["steps_per_checkpoint"]) or save(**k))
    # Patience beyond the cap: this is about the cap min_steps sets, not about stopping early.
    cfg = smoke_params.pretrain.model_copy(update={"epochs": 1, "batch_size": 16, "augment": False, "convergence":
                                                   smoke_params.pretrain.convergence.model_copy(update={"patience": 99})})
    metrics = pt.pretrain(cfg, load_prepared(tmp_path / "source"), tmp_path / "source", tmp_path / "out",
                          tmp_path / "ckpt", tmp_path / "live", Runtime(), image_preprocessing(28, 1),
                          pt.SourceVariant(min_steps=80))
    assert metrics["steps"] == metrics["cap_steps"] == 80 and metrics["epochs"] == 40  # 36 images: 2 steps an epoch
    assert metrics["stopped"] == "cap"
    rows = pd.read_csv(tmp_path / "live" / "plots" / "metrics" / "val" / "accuracy.tsv", sep="\t")
    assert len(rows) == 20 and len(passes) == 20 + 1  # a pass per row, and one for the card
    assert saves == [4]  # every 2 epochs
