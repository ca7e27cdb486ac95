"""The retrain flow on the audio track: WAV batches → GX (level, voices of the test set, duplicates) →
merge or quarantine → dvc repro of the audio fine-tuning → champion vs challenger on FRR at the target false
accepts per hour on the continuous test streams."""
import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml

from ..conftest import dvc, make_project, sh
from .test_flows_retrain import _run_flow

VOICES = pd.DataFrame({"speaker": ["x"] * 4, "language": ["en", "en-us", "en", "de"],
                       "voice": ["en+m3", "en-us+f2", "en+klatt", "de+m1"]})


def _speak(folder, word: str, speakers: list[str], seed: int) -> None:
    """eSpeak clips of `word`, one WAV per speaker name (a file's stem is its speaker)."""
    from transferlab.data.audio.synth import SynthStyle, plan_clips, render

    rng = np.random.default_rng(seed)
    plan = plan_clips([word] * len(speakers), VOICES, rng, SynthStyle(snr_db=(20.0, 30.0), babble_snr_db=(20.0, 30.0)))
    clips, _ = render(plan, 16000, 1.0)
    folder.mkdir(parents=True, exist_ok=True)
    for speaker, clip in zip(speakers, clips):
        sf.write(folder / f"{speaker}_nohash_0.wav", clip, 16000, subtype="PCM_16")


def _people(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


@pytest.fixture(scope="module")
def audio_retrain_repo(tmp_path_factory):
    repo = make_project(tmp_path_factory.mktemp("retrain-audio") / "project")
    pool, test = repo / "pool" / "audio", repo / "pool" / "audio-test"
    _speak(pool / "marvin", "marvin", _people("pool", 8), 1)
    _speak(pool / "other", "table", _people("pool", 8), 2)
    _speak(pool / "other", "hello", _people("poolb", 6), 3)
    _speak(test / "marvin", "marvin", _people("test", 12), 4)
    _speak(test / "other", "window", _people("test", 12), 5)
    _speak(test / "other", "garden", _people("testb", 8), 6)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["audio"]["prepare"]["target"] = {"kind": "folder", "root": "pool/audio", "test_root": "pool/audio-test",
                                            "wake_word": "marvin", "pool_sizes": [3, 8], "negatives_per_pool": 14,
                                            "pool_draws": 2}
    params["audio"]["finetune"]["strategies"] = ["scratch", "full"]
    params["audio"]["evaluate"]["focus_positives"] = 8
    params["retrain"] = {"audio": {"inbox": "inbox-audio", "model_name": "wake", "margin": 0.0}}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dvc("add", "pool/audio", "pool/audio-test", cwd=repo)
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-qm", "folder wake-word target"], repo)
    return repo


def test_audio_batches_are_validated_merged_or_quarantined_and_the_detector_promoted(audio_retrain_repo,
                                                                                     monkeypatch, tmp_path):
    repo = audio_retrain_repo
    inbox = repo / "inbox-audio"
    _speak(inbox / "week1" / "marvin", "marvin", _people("new", 4), 7)
    _speak(inbox / "week1" / "other", "paper", _people("new", 4), 8)
    # week2: one silent clip, and a voice of the fixed test set: neither may reach training.
    _speak(inbox / "week2" / "marvin", "marvin", ["test3"], 9)
    sf.write(inbox / "week2" / "marvin" / "quiet_nohash_0.wav", np.zeros(16000, np.float32), 16000)
    pool_before = sorted(p.name for p in (repo / "pool" / "audio").rglob("*.wav"))

    result, summary = _run_flow(repo, monkeypatch, tmp_path, track="audio")

    batches = {b["batch"]: b for b in result["batches"]}
    assert batches["week1"]["status"] == "merged" and batches["week1"]["items"] == 8
    bad = batches["week2"]
    assert bad["status"] == "quarantined"
    problems = " ".join(bad["problems"])
    assert "rms" in problems and "quiet_nohash_0.wav" in problems  # the silent clip, by name
    assert "speaker" in problems and "test3_nohash_0.wav" in problems  # the test voice, by name
    quarantine = repo / bad["moved_to"]
    assert sorted(p.name for p in (quarantine / "batch").rglob("*.wav")) == ["quiet_nohash_0.wav", "test3_nohash_0.wav"]
    assert json.loads((quarantine / "validation.json").read_text())["success"] is False
    pool_after = sorted(p.name for p in (repo / "pool" / "audio").rglob("*.wav"))
    assert len(pool_after) == len(pool_before) + 8 and "test3_nohash_0.wav" not in pool_after

    decision = result["decision"]
    # Promoted on its false-reject rate at the target false accepts per hour on the continuous test streams.
    assert decision["metric"] == "stream_frr" and decision["promoted"] and decision["reason"] == "no champion yet"
    assert 0.0 <= decision["challenger_score"] <= 1.0
    [version] = json.loads((repo / "registry.json").read_text())["models"]["wake"]
    assert version["stage"] == "champion" and "test_stream_frr" in version["metrics"]
    assert version["git_tag"] == "wake@v1.0.0"
    card = json.loads((repo / version["path"] / "card.json").read_text())
    assert card["classes"] == ["other", "marvin"]
    # The registered detector carries the threshold chosen on the validation stream for the params' rate.
    assert card["detector"]["target_fa_per_hour"] == 0.5 and 0 <= card["detector"]["threshold"] <= 1 + 1e-6
    # The prepared target now holds the merged clips for training, and the fixed test set is unchanged.
    from transferlab.data.prepared import load_prepared

    meta = load_prepared(repo / "data" / "audio" / "target").metadata
    assert (meta["split"] == "test").sum() == 32 and (meta["split"] == "train").sum() == 30
    assert meta[meta["split"] == "train"]["speaker"].str.startswith("new").sum() == 8
    assert "**promoted**" in summary and "week2" in summary and "quarantined" in summary
