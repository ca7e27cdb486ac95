"""Detections on score tracks (the jumping count is the state machine's), and the scorer that judges every
wake-word run on continuous streams: shared frozen-body features give the scores of the plain path, the threshold
comes from the validation stream, and the FRR is read at each false-accept rate."""
import numpy as np
import pandas as pd
import pytest
import torch

from transferlab.experiments.wakeword.stream_eval import (SCORED, TEST_NEGATIVE, TEST_POSITIVE, VALIDATION,
                                                          StreamScorer, det_over_seeds, rate_key)
from transferlab.experiments.wakeword.stream_metrics import candidate_thresholds, fa_table
from transferlab.experiments.wakeword.streaming import (Detection, StreamSettings, fire_indices, pick_detections,
                                                        window_scores)
from transferlab.models import create_model, freeze_modules, head_module_name

pytestmark = pytest.mark.unit
RATE, CLIP = 4000, 4000  # 1-s clips at 4 kHz keep the model and the streams small


def _state_machine(times, smoothed, threshold, refractory_s):
    """The detector as first written: one window at a time (the reference fire_indices must agree with)."""
    out, i, n, armed = [], 0, len(smoothed), True
    while i < n:
        if not armed:
            armed = smoothed[i] < threshold
            i += 1
            continue
        if smoothed[i] >= threshold:
            end = max(int(np.searchsorted(times, times[i] + refractory_s, side="right")), i + 1)
            best = i + int(np.argmax(smoothed[i:end]))
            out.append(Detection(float(times[best]), float(smoothed[best])))
            i, armed = end, False
            continue
        i += 1
    return out


@pytest.mark.parametrize("seed", range(6))
def test_jumping_from_run_to_run_fires_where_the_state_machine_does(seed):
    rng = np.random.default_rng(seed)
    times = np.arange(0, 120, 0.1)
    # Bursts of high scores of random length over a noisy floor: runs that touch, split and outlast the period.
    scores = np.clip(rng.normal(0.2, 0.15, len(times)) + np.repeat(rng.random(len(times) // 10) > 0.7, 10) * 0.5, 0, 1)
    for threshold in (0.0, 0.3, 0.5, 0.7, 0.95, 1.1):
        for refractory in (0.0, 0.25, 1.0, 3.0):
            assert pick_detections(times, scores, threshold, refractory) == _state_machine(times, scores, threshold,
                                                                                           refractory)
    assert len(fire_indices(times, scores, 0.3, 1.0, limit=3)) == 3


@pytest.fixture(scope="module")
def streams(tmp_path_factory):
    """Noise streams with a loud tone burst as the 'wake word' at known times in the positive one."""
    root = tmp_path_factory.mktemp("streams")
    rng = np.random.default_rng(0)
    for name, seconds in ((VALIDATION, 60), (TEST_NEGATIVE, 90), (TEST_POSITIVE, 60), ("validation-positive", 20)):
        audio = rng.normal(0, 0.05, seconds * RATE)
        rows = []
        if name.endswith("positive"):
            for at in range(5, seconds - 2, 10):
                t = np.arange(int(0.5 * RATE)) / RATE
                audio[at * RATE:at * RATE + len(t)] += 0.5 * np.sin(2 * np.pi * 600 * t)
                rows.append({"start_s": at, "end_s": at + 0.5, "text": "tone", "kind": "wake_word"})
        np.save(root / f"{name}.npy", (np.clip(audio, -1, 1) * 32767).astype(np.int16))
        pd.DataFrame(rows, columns=["start_s", "end_s", "text", "kind"]).to_csv(root / f"{name}.csv", index=False)
    return root


def _model(frozen_body: bool | str):
    """A small audio CRNN: frozen_body True freezes all but the head (`head`), "blocks" the front end and conv blocks
    (`last_k: 1`: the GRU pooling learns)."""
    torch.manual_seed(0)
    model = create_model("audio_crnn", num_classes=2, widths=[4, 8, 8])
    if frozen_body:
        learned = {head_module_name(model)} | ({"pool"} if frozen_body == "blocks" else set())
        freeze_modules(model, [n for n, _ in model.named_children() if n not in learned])
    return model.eval()


@pytest.mark.parametrize("frozen", [True, "blocks"])
def test_a_frozen_body_is_run_once_and_gives_the_plain_path_s_scores(streams, frozen):
    from transferlab.experiments.wakeword import stream_eval

    stream_eval._FEATURES.clear()
    scorer = StreamScorer(str(streams), StreamSettings(hop_s=0.25), 0.5, RATE, CLIP)
    model = _model(frozen)
    shared, _ = scorer.score(model, 1)
    assert len(stream_eval._FEATURES) == len(SCORED)  # one body pass per stream, kept
    for name in SCORED:
        _, plain = window_scores(model, scorer.audio(name), CLIP, scorer.hop_samples, 1)
        np.testing.assert_allclose(shared[name], plain, atol=1e-5)
    # A second run on the same body reuses its features: a new head changes the scores, not the body.
    other = _model(frozen)
    torch.nn.init.normal_(other.get_classifier().weight)
    again, _ = scorer.score(other, 1)
    assert len(stream_eval._FEATURES) == len(SCORED)
    _, plain = window_scores(other, scorer.audio(TEST_NEGATIVE), CLIP, scorer.hop_samples, 1)
    np.testing.assert_allclose(again[TEST_NEGATIVE], plain, atol=1e-5)
    assert not np.allclose(again[TEST_NEGATIVE], shared[TEST_NEGATIVE])
    # A body that learned is its own: nothing is shared with a fully trainable model.
    scorer.score(_model(frozen_body=False), 1)
    assert len(stream_eval._FEATURES) == len(SCORED)


def test_the_run_hook_records_the_threshold_chosen_on_validation_and_judge_reads_every_rate(streams):
    scorer = StreamScorer(str(streams), StreamSettings(hop_s=0.25), 60.0, RATE, CLIP)
    info, tensors, card = scorer(_model(frozen_body=False), "r0", ["other", "tone"], save=True)
    assert set(tensors) == {f"r0/{n}" for n in SCORED} and info["stream_windows"] == sum(len(t) for t in tensors.values())
    section = card["detector"]
    assert section["target_fa_per_hour"] == 60.0 and section["hop_s"] == 0.25
    assert section["validation_fa_per_hour"] <= 60.0 and 0 <= section["threshold"] <= 1 + 1e-6
    scores = {n: tensors[f"r0/{n}"].numpy() for n in SCORED}
    # Lowered from the top while the validation negatives stay at or under one false accept a minute.
    val = scorer.track(VALIDATION, scores[VALIDATION])
    table = fa_table([val], candidate_thresholds([val], []), scorer.settings.refractory_s)
    above = table[table["threshold"] >= section["threshold"]]
    assert (above["fa_per_hour"] <= 60.0).all() and len(above) < len(table)
    below = table[table["threshold"] < section["threshold"]]["threshold"].max()
    assert table.loc[table["threshold"] == below, "fa_per_hour"].iloc[0] > 60.0
    figures, det = scorer.judge(scores, [1.0, 60.0, 600.0])
    assert figures[rate_key(1.0)] >= figures[rate_key(60.0)] >= figures[rate_key(600.0)]
    assert figures["deployed_threshold"] == section["threshold"]
    assert {"fa_per_hour", "frr", "threshold"} <= set(det.columns)
    assert scorer(_model(frozen_body=False), "r0", ["other", "tone"], save=False)[2] == {}
    with pytest.raises(ValueError, match="other"):
        scorer(_model(frozen_body=False), "r0", ["cat", "dog"], save=False)


def test_det_over_seeds_averages_each_seed_s_curve():
    def table(frr_at_zero):
        return pd.DataFrame({"threshold": [0.2, 0.9], "fa_per_hour": [5.0, 0.0], "frr": [0.0, frr_at_zero]})
    runs = pd.DataFrame({"run_id": ["a", "b"], "backbone": "audio", "strategy": "full", "per_class": 5, "seed": [0, 1]})
    det = det_over_seeds({"a": table(0.5), "b": table(0.3)}, runs, np.array([0.1, 10.0]))
    assert det.set_index("fa_per_hour")["frr"].to_dict() == {0.1: pytest.approx(0.4), 10.0: 0.0}
    assert (det["seeds"] == 2).all()


@pytest.mark.parametrize("part", ["logits", "features"])
def test_windows_from_one_stft_of_the_stream_are_the_windows_scored_one_by_one(part):
    from transferlab.core.engine import predict_logits
    from transferlab.experiments.wakeword.streaming import window_outputs, window_starts

    torch.manual_seed(0)
    model = create_model("audio_crnn", num_classes=2, widths=[4, 8, 8]).eval()
    assert model.frontend.shares_frames(16000, 1600) and not model.frontend.shares_frames(16000, 1000)
    stream = (np.random.default_rng(1).normal(0, 0.2, 16000 * 12) * 32767).astype(np.int16)
    shared = window_outputs(model, stream, 16000, 1600, part=part, batch_size=32)
    clips = torch.from_numpy(np.stack([stream[a:a + 16000] for a in window_starts(len(stream), 16000, 1600)]))
    if part == "logits":
        one_by_one = predict_logits(model, clips)
    else:
        with torch.inference_mode():
            one_by_one = model.forward_features(clips.float().unsqueeze(1) / 32768)
    assert shared.shape == one_by_one.shape
    np.testing.assert_allclose(shared.numpy(), one_by_one.numpy(), atol=1e-4)
    # A hop the STFT does not divide takes the window-by-window path: the same numbers.
    np.testing.assert_allclose(window_outputs(model, stream[:16000 * 3], 16000, 1000).numpy(),
                               predict_logits(model, torch.from_numpy(np.stack(
                                   [stream[a:a + 16000] for a in window_starts(16000 * 3, 16000, 1000)]))).numpy(),
                               atol=1e-5)
