"""`transferlab predict`: the card's preprocessing, per-file errors, images and audio."""
import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from transferlab.models.artifacts import make_card, save_model
from transferlab.models.preprocessing import audio_preprocessing, image_preprocessing
from transferlab.cli import app
from transferlab.models import create_model
from transferlab.ops.predict import predict_files


def _save(tmp_path, name, preprocessing, classes):
    torch.manual_seed(0)
    model = create_model(name, num_classes=len(classes), widths=[4, 8, 8] if name != "m5" else [4, 8])
    out = tmp_path / "model"
    save_model(out, model, make_card(architecture={"name": name, "kwargs": {"widths": [4, 8, 8] if name != "m5" else [4, 8]}},
                                     classes=classes, preprocessing=preprocessing))
    return out, model


def test_images_get_classes_and_a_corrupt_file_gets_its_error(tmp_path):
    model_dir, model = _save(tmp_path, "convnet_small", image_preprocessing(28, 1), ["a", "b", "c"])
    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 30, 3), dtype=np.uint8)).save(folder / "one.png")  # RGB, other size
    Image.fromarray(rng.integers(0, 255, (28, 28), dtype=np.uint8)).save(folder / "sub" / "two.jpg")
    (folder / "broken.png").write_bytes(b"not an image at all")
    (folder / "notes.txt").write_text("ignored: not an image suffix")
    results = predict_files(model_dir, [folder])
    by_name = {r.path.split("/")[-1]: r for r in results}
    assert set(by_name) == {"one.png", "two.jpg", "broken.png"}
    assert "broken.png" in by_name["broken.png"].error and by_name["broken.png"].label is None
    for name in ("one.png", "two.jpg"):
        r = by_name[name]
        assert r.error is None and r.label in {"a", "b", "c"}
        assert abs(sum(r.probabilities.values()) - 1) < 1e-4
    # Same preprocessing as training: grey 28x28 uint8 → normalised; the direct model call agrees.
    from transferlab.data.sources import canonical, read_image
    from transferlab.core.engine import predict_logits

    x = canonical(read_image(folder / "one.png", 28, 1)[None], 28, 1)
    p = torch.softmax(predict_logits(model, torch.from_numpy(x)), 1)[0]
    assert by_name["one.png"].probabilities["b"] == pytest.approx(float(p[1]), abs=1e-4)


def test_cli_prints_every_file_and_exits_1_when_one_failed(tmp_path):
    model_dir, _ = _save(tmp_path, "convnet_small", image_preprocessing(28, 1), ["x", "y"])
    good, bad = tmp_path / "good.png", tmp_path / "missing.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(good)
    result = CliRunner().invoke(app, ["predict", str(model_dir), str(good), str(bad), "--json"])
    assert result.exit_code == 1
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert rows[0]["label"] in {"x", "y"} and rows[1]["error"] and "missing.png" in rows[1]["error"]
    assert CliRunner().invoke(app, ["predict", str(model_dir), str(good)]).exit_code == 0
    assert CliRunner().invoke(app, ["predict", str(tmp_path / "nomodel"), str(good)]).exit_code == 2


def test_audio_files_are_resampled_to_the_cards_rate(tmp_path):
    import soundfile as sf

    model_dir, _ = _save(tmp_path, "m5", audio_preprocessing(16000, 16000), ["marvin", "other"])
    t = np.arange(22050 * 2) / 22050
    sf.write(tmp_path / "stereo.wav", np.stack([np.sin(2 * np.pi * 440 * t)] * 2, 1) * 0.3, 22050)
    sf.write(tmp_path / "short.flac", np.sin(2 * np.pi * 220 * t[:4000]) * 0.3, 22050)
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    results = {r.path.split("/")[-1]: r for r in predict_files(model_dir, [tmp_path])}
    assert results["stereo.wav"].label in {"marvin", "other"} and results["short.flac"].label is not None
    assert "corrupt.wav" in results["corrupt.wav"].error
