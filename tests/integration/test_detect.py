"""`transferlab detect` on a 10-minute recording with wake words at known times: a real (small) detector is
trained on 1-second clips, saved with a card, and slid over the stream through the command line. The "word" is
a rising chirp; the negatives hold constant tones, noise bursts and silence, so the test is about the
streaming machinery (windows, smoothing, refractory period, timing, the card's threshold), not about speech."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from transferlab.experiments.wakeword.streaming import pick_detections, smooth, window_starts
from transferlab.models import create_model
from transferlab.models.artifacts import make_card, save_model
from transferlab.models.preprocessing import audio_preprocessing

from ..conftest import ROOT, venv_env

RATE, CLIP = 16000, 16000
WORD_S = 0.4


def chirp(rate: int = RATE) -> np.ndarray:
    t = np.arange(int(WORD_S * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * (700 * t + 0.5 * 2000 * t ** 2 / WORD_S)) * np.hanning(len(t))).astype(np.float32)


def distractor(kind: int, rng: np.random.Generator, rate: int = RATE) -> np.ndarray:
    n = int(rng.uniform(0.2, 0.6) * rate)
    t = np.arange(n) / rate
    if kind == 0:  # a constant tone where the chirp sweeps
        wave = np.sin(2 * np.pi * rng.uniform(600, 2700) * t)
    elif kind == 1:  # a falling sweep: the word backwards
        wave = np.sin(2 * np.pi * (2700 * t - 0.5 * 2000 * t ** 2 / (n / rate)))
    else:  # a burst of noise
        wave = rng.normal(0, 0.5, n)
    return (0.5 * wave * np.hanning(n)).astype(np.float32)


def background(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.normal(0, 0.01, n).astype(np.float32)


def training_clips(n: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    clips, labels, word = [], [], chirp()
    for i in range(n):
        clip = background(CLIP, rng)
        label = i % 2
        if label:
            at = rng.integers(0, CLIP - len(word))
            clip[at:at + len(word)] += word * rng.uniform(0.5, 1.5)
        for _ in range(rng.integers(0, 3) if not label else rng.integers(0, 2)):
            d = distractor(int(rng.integers(0, 3)), rng)[: CLIP // 2]
            at = rng.integers(0, CLIP - len(d))
            clip[at:at + len(d)] += d
        clips.append(np.clip(clip, -1, 1))
        labels.append(label)
    x = torch.from_numpy((np.stack(clips) * 32767).round().astype(np.int16))
    return x, torch.tensor(labels)


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x, y = training_clips(512, rng)
    model = create_model("audio_convnet", num_classes=2, widths=[8, 16, 16])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for step in range(240):
        idx = torch.from_numpy(rng.integers(0, len(x), 32))
        loss = torch.nn.functional.cross_entropy(model((x[idx].float() / 32768).unsqueeze(1)), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    out = tmp_path_factory.mktemp("detector") / "chirp"
    card = make_card(architecture={"name": "audio_convnet", "kwargs": {"widths": [8, 16, 16]}}, classes=["other", "chirp"],
                     preprocessing=audio_preprocessing(RATE, CLIP),
                     extra={"detector": {"hop_s": 0.1, "smooth_frames": 3, "refractory_s": 1.0, "threshold": 0.5}})
    save_model(out, model.eval(), card)
    return out


def stream_with_words(seconds: int, rate: int, rng: np.random.Generator) -> tuple[np.ndarray, list[float]]:
    """Background with a distractor every ~3 s, and a chirp every ~40 s (its centre time returned)."""
    wave = background(seconds * rate, rng)
    word, times = chirp(rate), []
    for t in np.arange(1.0, seconds - 1, 3.0) + rng.uniform(-0.5, 0.5, len(np.arange(1.0, seconds - 1, 3.0))):
        d = distractor(int(rng.integers(0, 3)), rng, rate)
        at = int(t * rate)
        wave[at:at + len(d)] += d[: len(wave) - at]
    for t in np.arange(20.0, seconds - 5, 40.0) + rng.uniform(0, 5, len(np.arange(20.0, seconds - 5, 40.0))):
        at = int(t * rate)
        wave[at - 2 * rate:at + 2 * rate] = background(4 * rate, rng)  # a clean stretch around each word
        wave[at:at + len(word)] += word
        times.append(t + WORD_S / 2)
    return np.clip(wave, -1, 1), times


def _detect(*args, cwd):
    return subprocess.run([sys.executable, "-m", "transferlab.cli", "detect", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, env=venv_env(COLUMNS="200", PYTHONPATH=str(ROOT)))


def test_detect_finds_every_word_in_ten_minutes_and_nothing_else(detector, tmp_path):
    # 22.05 kHz stereo: detect resamples and mixes down to the model's 16 kHz mono.
    wave, words = stream_with_words(600, 22050, np.random.default_rng(1))
    sf.write(tmp_path / "ten-minutes.wav", np.stack([wave, wave], 1), 22050, subtype="PCM_16")
    proc = _detect(detector, tmp_path / "ten-minutes.wav", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (result,) = [json.loads(line) for line in proc.stdout.splitlines()]
    found = [d["time_s"] for d in result["detections"]]
    assert abs(result["seconds"] - 600) < 0.01 and result["real_time_factor"] > 0
    assert len(words) >= 14 and all(min(abs(f - w) for f in found) <= 0.5 for w in words), (words, found)
    assert len(found) == len(words), (words, found)  # no detection in the stretches without a word
    text = _detect(detector, tmp_path / "ten-minutes.wav", cwd=tmp_path).stdout
    assert "card's threshold 0.5; hop 0.1 s, smoothing over 3 windows, refractory 1 s" in text
    assert f"ten-minutes.wav: {len(words)} detection(s) in 600.0 s of audio, real-time factor" in text


def test_bad_files_are_named_and_the_others_still_scanned(detector, tmp_path):
    wave, _ = stream_with_words(60, RATE, np.random.default_rng(2))
    sf.write(tmp_path / "good.wav", wave, RATE, subtype="PCM_16")
    (tmp_path / "empty.wav").write_bytes(b"")
    whole = (tmp_path / "good.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(whole[: len(whole) // 2])
    nan = wave.copy()
    nan[100:110] = np.nan
    sf.write(tmp_path / "nan.wav", nan, RATE, subtype="FLOAT")
    proc = _detect(detector, "good.wav", "empty.wav", "cut.wav", "nan.wav", "--json", cwd=tmp_path)
    assert proc.returncode == 1
    by = {r["path"]: r for r in map(json.loads, proc.stdout.splitlines()[:4])}
    assert by["good.wav"]["error"] is None and by["good.wav"]["detections"]
    assert "empty.wav" in by["empty.wav"]["error"]
    assert "cut.wav: truncated" in by["cut.wav"]["error"]
    assert "10 of 960,000 samples are NaN" in by["nan.wav"]["error"]


def test_a_model_that_cannot_detect_is_one_line_naming_it(detector, tmp_path):
    card = json.loads((detector / "card.json").read_text())
    del card["detector"]
    no_threshold = tmp_path / "no-threshold"
    no_threshold.mkdir()
    (no_threshold / "model.safetensors").write_bytes((detector / "model.safetensors").read_bytes())
    (no_threshold / "card.json").write_text(json.dumps(card))
    sf.write(tmp_path / "a.wav", np.zeros(RATE, np.float32), RATE)
    proc = _detect(no_threshold, "a.wav", cwd=tmp_path)
    assert proc.returncode == 2 and "records no detection threshold" in proc.stdout and "--threshold" in proc.stdout
    assert _detect(no_threshold, "a.wav", "--threshold", "0.9", cwd=tmp_path).returncode == 0
    assert "between 0 and 1" in _detect(detector, "a.wav", "--threshold", "7", cwd=tmp_path).stdout


def test_windows_smoothing_and_refractory_period():
    assert list(window_starts(16000, 16000, 1600)) == [0]
    assert list(window_starts(20000, 16000, 1600)) == [0, 1600, 3200]
    assert list(window_starts(8000, 16000, 1600)) == [0]  # shorter than a clip: one padded window
    assert np.allclose(smooth(np.array([0, 3, 6, 9.0]), 3), [0, 1.5, 3, 6])  # causal: only the past
    times = np.arange(0, 10, 0.1)
    score = np.zeros_like(times)
    score[20:26] = [0.6, 0.8, 0.9, 0.7, 0.6, 0.55]  # one word: one detection, at its best window
    score[27:30] = 0.7  # above again within the refractory period: the same word
    score[60:62] = 0.9  # another word after the score fell
    found = pick_detections(times, score, 0.5, 1.0)
    assert [round(d.time_s, 1) for d in found] == [2.2, 6.0]
    # Above the threshold for longer than the refractory period: no second detection until it falls.
    long = np.where((times > 1) & (times < 5), 0.9, 0.0)
    assert len(pick_detections(times, long, 0.5, 1.0)) == 1
