"""Audio track: synthesis counts and format, held-out voices, users' audio folders, features, detector metrics."""
import numpy as np
import pytest
import soundfile as sf
import torch

from transferlab.system.context import Runtime
from transferlab.data.audio.build import ROLES, prepare_audio, speaker_roles
from transferlab.data.audio.clips import load_audio_folder, load_speechcommands
from transferlab.data.audio.mfcc import pooled_features
from transferlab.params import AudioPrepareParams, VoiceParams
from transferlab.data.prepared import load_prepared
from transferlab.system.errors import DataError
from transferlab.experiments.wakeword.metrics import at_threshold, frr_at_far

WORDS = ["yes", "no", "left", "right"]
TINY = {"voices": {"languages": ["en", "de"]},
        "source": {"clips": 80, "val_fraction": 0.25, "words": WORDS},
        "target": {"positives_train": 6, "positives_test": 5, "negatives_train": 10, "negatives_test": 12,
                   "pool_sizes": [2, 6], "negatives_per_pool": 8, "pool_draws": 2}}


@pytest.fixture(scope="module")
def tiny_audio(tmp_path_factory):
    root = tmp_path_factory.mktemp("audio")
    params = AudioPrepareParams.model_validate(TINY)
    summary = prepare_audio(params, root / "source", root / "target")
    return params, summary, load_prepared(root / "source"), load_prepared(root / "target")


def test_synthesis_yields_the_asked_counts_per_word_voice_and_split(tiny_audio):
    params, summary, source, target = tiny_audio
    meta = source.metadata
    assert len(meta) == 80 and summary["source"]["clips"] == 80
    assert (meta["split"] == "val").sum() == 20 and (meta["split"] == "train").sum() == 60
    for split, n in (("train", 60), ("val", 20)):
        counts = meta[meta["split"] == split]["word"].value_counts()
        assert set(counts.index) == set(WORDS) and counts.max() - counts.min() <= 1, counts  # balanced words
    assert set(meta["language"]) <= {"en", "de"}
    assert all(v == lang or v.startswith(lang + "+") for v, lang in zip(meta["voice"], meta["language"]))
    t = target.metadata
    assert target.classes == ["other", "marvin"]
    assert ((t["split"] == "train") & (t["label"] == 1)).sum() == 6
    assert ((t["split"] == "test") & (t["label"] == 1)).sum() == 5
    assert ((t["split"] == "test") & (t["label"] == 0)).sum() == 12
    assert set(t[t["label"] == 1]["word"]) == {"marvin"} and "marvin" not in set(meta["word"])
    assert {"near_miss", "other_word", "noise"} <= set(t["kind"])
    pools = target.pools
    for (draw, n), g in pools.groupby(["draw", "per_class"]):
        labels = target.labels[g["row"].to_numpy()].numpy()
        assert (labels == 1).sum() == n and (labels == 0).sum() == 8


def test_every_clip_is_16khz_one_second(tiny_audio):
    _, _, source, target = tiny_audio
    for data in (source, target):
        assert data.samples.dtype == torch.int16 and data.samples.shape[1] == 16000
        assert set(data.metadata["sample_rate"]) == {16000} and set(data.metadata["duration_s"]) == {1.0}
        assert (data.metadata["rms"] > 0.002).all()  # nothing silent


def test_held_out_voices_never_appear_in_training(tiny_audio):
    _, _, source, target = tiny_audio
    speakers = {"A-train": set(source.metadata.query("split == 'train'")["speaker"]),
                "A-val": set(source.metadata.query("split == 'val'")["speaker"]),
                "B-train": set(target.metadata.query("split == 'train'")["speaker"]) - {"none"},
                "B-test": set(target.metadata.query("split == 'test'")["speaker"]) - {"none"}}
    for a in speakers:
        for b in speakers:
            if a < b:
                assert not speakers[a] & speakers[b], (a, b)
    roles = speaker_roles(VoiceParams(), 0)
    assert set(roles.values()) == set(ROLES) and len(roles) > 100


def test_babble_is_never_made_from_the_wake_word():
    import pandas as pd

    from transferlab.data.audio.synth import SynthStyle, _render_chunk, plan_clips

    voices = pd.DataFrame({"speaker": ["default"], "language": ["en"], "voice": ["en"]})
    rng, style = np.random.default_rng(0), SynthStyle(noise_mix=(0, 0, 0, 1))  # babble only
    wake = plan_clips(["marvin"], voices, rng, style).assign(babble_source=False)
    noise = plan_clips([""], voices, rng, style, noise_only=True).assign(babble_source=True)
    alone, _ = _render_chunk(noise.reset_index(drop=True), 16000, 16000)  # no speech to babble: pink noise
    beside_wake, _ = _render_chunk(pd.concat([wake, noise], ignore_index=True), 16000, 16000)
    np.testing.assert_array_equal(beside_wake[1], alone[0])  # the wake word did not become its babble
    beside_word, _ = _render_chunk(pd.concat([wake.assign(babble_source=True), noise], ignore_index=True),
                                   16000, 16000)
    assert not np.array_equal(beside_word[1], alone[0])  # any other utterance does


def test_a_chunk_sounds_the_same_whatever_was_rendered_before():
    """eSpeak's state (a clock-seeded generator, signal state carried between utterances) once made every
    audio_prepare differ; a chunk now depends only on its own plan."""
    import pandas as pd

    from transferlab.data.audio.synth import SynthStyle, _render_chunk, plan_clips

    voices = pd.DataFrame({"speaker": ["default", "f5"], "language": ["en", "en"], "voice": ["en", "en+f5"]})
    style = SynthStyle()
    chunk = plan_clips(["happy", "marvin", "seven"], voices, np.random.default_rng(1), style)
    other = plan_clips(["dog", "house"], voices, np.random.default_rng(2), style)
    first, lengths = _render_chunk(chunk, 16000, 16000)
    _render_chunk(other, 16000, 16000)
    again, lengths_again = _render_chunk(chunk, 16000, 16000)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(lengths, lengths_again)
    assert (lengths > 0).all() and np.abs(first).max() > 1000  # real speech, not silence


def test_unknown_language_is_named():
    with pytest.raises(DataError, match="xx-nope"):
        speaker_roles(VoiceParams(languages=["en", "xx-nope"]), 0)


def _write_folder(root, rate=8000, stereo=False):
    rng = np.random.default_rng(0)
    for cls in ("marvin", "other"):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            shape = (rate // 2, 2) if stereo else (rate // 2,)
            sf.write(root / cls / f"spk{i}_nohash_0.wav", (rng.standard_normal(shape) * 0.1).astype(np.float32), rate)


def test_audio_folder_any_rate_and_stereo_become_mono_16k_clips(tmp_path):
    _write_folder(tmp_path, rate=8000, stereo=True)
    data = load_audio_folder(tmp_path, 16000, 1.0)
    assert data.clips.shape == (6, 16000) and data.classes == ["marvin", "other"]
    assert data.speakers[:3] == ["spk0", "spk1", "spk2"]
    # The half-second clip is centred in the one-second window: silence on both sides.
    assert (data.clips[:, :3000] == 0).all() and (data.clips[:, 5000:11000] != 0).any()


def test_corrupt_wav_in_a_user_folder_names_the_file(tmp_path):
    _write_folder(tmp_path)
    bad = tmp_path / "other" / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(DataError, match="broken.wav"):
        load_audio_folder(tmp_path, 16000, 1.0)
    bad.write_bytes(b"")
    empty = tmp_path / "other" / "empty.flac"
    bad.unlink()
    sf.write(empty, np.zeros(0, np.float32), 16000)
    with pytest.raises(DataError, match="empty.flac"):
        load_audio_folder(tmp_path, 16000, 1.0)


def test_speechcommands_on_disk_is_read_without_download(tmp_path):
    base = tmp_path / "SpeechCommands" / "speech_commands_v0.02"
    rng = np.random.default_rng(1)
    for word in ("yes", "no"):
        (base / word).mkdir(parents=True)
        for spk in ("aa11", "bb22"):
            sf.write(base / word / f"{spk}_nohash_0.wav", (rng.standard_normal(16000) * 0.1).astype(np.float32), 16000)
    data = load_speechcommands(tmp_path, 16000, 1.0)
    assert sorted(data.classes) == ["no", "yes"] and len(data.labels) == 4
    assert set(data.speakers) == {"aa11", "bb22"}
    with pytest.raises(DataError, match="SPEECHCOMMANDS"):
        load_speechcommands(tmp_path / "nowhere", 16000, 1.0)


def test_pooled_features_shapes(tiny_audio):
    _, _, source, _ = tiny_audio
    feats = pooled_features(source.samples[:10], 16000, n_mfcc=20, segments=4)
    assert feats.shape == (10, 360) and torch.isfinite(feats).all()
    assert pooled_features(source.samples[:3], 16000, n_mfcc=13, segments=2).shape == (3, 13 * 3 * 4)


def test_wake_word_ceiling_trains_on_b_train_voices_only(tiny_audio):
    from transferlab.experiments.wakeword.ceiling import plentiful_training_set

    params, _, _, target = tiny_audio
    data = plentiful_training_set(params, positives=9, runtime=Runtime())
    assert int(data.labels.sum()) == 9 and len(data.labels) == 18 and data.clips.shape[1] == 16000
    roles = speaker_roles(params.voices, params.seed)
    assert {roles[s] for s in data.speakers} == {"B-train"}
    test_speakers = set(target.metadata.loc[target.metadata["split"] == "test", "speaker"])
    assert test_speakers and not test_speakers & set(data.speakers)
    # Fresh clips, not the prepared ones again.
    prepared = set(target.metadata["content_hash"])
    from transferlab.system.io import content_hash
    assert not prepared & {content_hash(c.tobytes()) for c in data.clips}


def test_frr_at_far_and_false_accepts_per_hour():
    labels = np.array([0] * 100 + [1] * 10)
    scores = np.concatenate([np.linspace(0, 0.5, 100), np.linspace(0.45, 0.9, 10)])
    # 1% FAR allows one false accept: the threshold sits at the second-highest negative (~0.495);
    # only the 0.45 positive falls below it.
    assert frr_at_far(scores, labels, 0.01) == pytest.approx(0.1)
    assert frr_at_far(scores, labels, 0.5) == 0.0
    op = at_threshold(scores, labels, 0.48, clip_seconds=1.0)
    assert op["far"] == pytest.approx(0.04) and op["fa_per_hour"] == pytest.approx(4 * 3600 / 100)
    assert op["frr"] == pytest.approx(0.1)


def test_frr_against_each_kind_of_negative_names_the_confusable_one():
    import pandas as pd

    from transferlab.experiments.wakeword.evaluate import frr_by_negative_kind

    kinds = np.array(["positive"] * 10 + ["near_miss"] * 50 + ["noise"] * 50)
    labels = torch.tensor((kinds == "positive").astype(np.int64))
    # Near misses score like the wake word; noise scores far below it.
    p = np.concatenate([np.linspace(0.6, 0.9, 10), np.linspace(0.7, 0.95, 50), np.linspace(0.01, 0.2, 50)])
    logits = torch.from_numpy(np.stack([np.zeros_like(p), np.log(p / (1 - p))], 1)).float()
    runs = pd.DataFrame({"run_id": ["a/full/n5/s0", "a/full/n5/s1"], "backbone": "a", "strategy": "full",
                         "per_class": 5, "seed": [0, 1]})
    table = frr_by_negative_kind(runs, {"test_labels": labels, "a/full/n5/s0": logits, "a/full/n5/s1": logits},
                                 kinds, 0.02, 0.95).set_index("negatives")
    assert table.loc["noise", "frr"] == 0.0 and table.loc["near_miss", "frr"] == 1.0
    assert set(table.index) == {"near_miss", "noise"} and (table["seeds"] == 2).all()


def test_reference_frr_is_judged_against_the_ci_over_seeds():
    """A user's own reference FRRs (none by default: the ceiling is the yardstick, tests/unit/test_audio_ceiling.py)."""
    import pandas as pd

    from transferlab.experiments.wakeword.claims import reference_claims
    from transferlab.analysis.curves import learning_curves

    frr = {(20, 0): 0.60, (20, 1): 0.65, (20, 2): 0.70, (100, 0): 0.10, (100, 1): 0.12, (100, 2): 0.11,
           (5, 0): 0.2, (5, 1): 0.9, (5, 2): 0.5}
    runs = pd.DataFrame([{"backbone": "audio", "strategy": "full", "per_class": n, "seed": s, "frr_at_far1": v}
                         for (n, s), v in frr.items()])
    curves = learning_curves(runs, 0.95, ("frr_at_far1",))
    claims = {c.key: c for c in reference_claims(curves, "frr_at_far1", {5: 0.5, 20: 0.26, 100: 0.14, 50: 0.3},
                                                 "full")}
    assert claims["audio_reference_n20"].verdict == "does not hold"  # every seed far above the reference
    assert claims["audio_reference_n100"].verdict == "holds"  # the whole CI below it
    assert claims["audio_reference_n5"].verdict == "inconclusive"  # the CI straddles it
    assert "95% CI 0.000 to 1.000" in claims["audio_reference_n5"].evidence  # a rate's CI stays within [0, 1]
    assert claims["audio_reference_n50"].verdict == "inconclusive" and "0 runs" in claims["audio_reference_n50"].evidence
    assert "vs reference 0.260" in claims["audio_reference_n20"].evidence


def test_gx_names_a_voice_that_leaks_into_the_test_set(tiny_audio, tmp_path):
    from transferlab.params import AudioValidateParams
    from transferlab.data.audio.validation import build_audio_checks
    from transferlab.data.validation import run_checks

    params, _, source, target = tiny_audio
    leaked = source.metadata.query("split == 'train'")["speaker"].iloc[0]
    meta = target.metadata.copy()
    meta.loc[meta.index[meta["split"] == "test"][0], "speaker"] = leaked
    target.metadata = meta
    try:
        checks = build_audio_checks(source, target, params, AudioValidateParams(min_positives_test=2, min_per_class_source=5))
        summary, failures = run_checks(checks, tmp_path / "docs")
    finally:
        target.metadata = meta.assign(speaker=load_prepared(target.root).metadata["speaker"])
    assert not summary["success"]
    leak = [f for f in failures if f.table == "audio_speaker_leakage"]
    assert leak and leaked in leak[0].rows
    assert all(t["success"] for name, t in summary["tables"].items() if name != "audio_speaker_leakage"), summary


def test_prepare_stage_fails_cleanly_on_a_corrupt_user_file(tmp_path, monkeypatch):
    import yaml

    from stages import audio_prepare

    _write_folder(tmp_path / "words")
    (tmp_path / "words" / "other" / "bad.wav").write_bytes(b"not audio at all")
    params = {"audio": {"prepare": {"source": {"kind": "folder", "root": str(tmp_path / "words")}}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        audio_prepare.main(["--params", "params.yaml", "--source", "out/source", "--target", "out/target",
                            "--metrics", "out/metrics.json"])
    assert exit_info.value.code == 2
    assert not (tmp_path / "out" / "source").exists() and not (tmp_path / "out" / "metrics.json").exists()
    assert (tmp_path / "words" / "other" / "bad.wav").exists()  # the user's file is left alone
