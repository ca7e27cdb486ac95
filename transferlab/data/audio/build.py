"""Build audio source A (spoken-word classification) and target B (wake-word detection) with held-out voices."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from transferlab.data.prepared import write_prepared
from transferlab.system.errors import DataError
from transferlab.data.audio.clips import AudioSet, audio_metadata_table, load_audio_folder, load_speechcommands
from transferlab.params import AudioPrepareParams, AudioSourceParams, AudioTargetParams, SynthParams, VoiceParams
from transferlab.data.audio.streams import BACKGROUND
from transferlab.data.audio.synth import SynthStyle, plan_clips, render
from transferlab.system.context import CPU, Runtime

ROLES = ("A-train", "A-val", "B-train", "B-test")
NEGATIVE, POSITIVE = 0, 1


def speaker_roles(cfg: VoiceParams, seed: int) -> dict[str, str]:
    """Each eSpeak variant (and the plain voice, 'default') is one speaker with exactly one role."""
    from transferlab.data.audio.espeak import has_dictionary, variants

    missing = [lang for lang in cfg.languages if not has_dictionary(lang)]
    if missing:
        raise DataError(f"audio.prepare.voices.languages: eSpeak has no dictionary for {missing}")
    speakers = ["default"] + variants()
    order = np.random.default_rng([seed, 21]).permutation(len(speakers))
    cuts = np.round(np.cumsum(cfg.split) * len(speakers)).astype(int)
    roles = {}
    for rank, idx in enumerate(order):
        roles[speakers[idx]] = ROLES[int(np.searchsorted(cuts, rank, side="right"))]
    return roles


def voices_for(role: str, roles: dict[str, str], languages: list[str]) -> pd.DataFrame:
    speakers = sorted(s for s, r in roles.items() if r == role)
    if not speakers:
        raise DataError(f"no eSpeak speaker got role {role}; widen audio.prepare.voices.split")
    rows = [(s, lang, lang if s == "default" else f"{lang}+{s}") for s in speakers for lang in languages]
    return pd.DataFrame(rows, columns=["speaker", "language", "voice"])


def _style(s: SynthParams) -> SynthStyle:
    return SynthStyle(rate=tuple(map(int, s.rate)), pitch=tuple(map(int, s.pitch)),
                      word_gap=tuple(map(int, s.word_gap)), peak=tuple(s.peak), noise_mix=tuple(s.noise_mix),
                      snr_db=tuple(s.snr_db), babble_snr_db=tuple(s.babble_snr_db))


def _balanced(words: list[str], n: int, rng: np.random.Generator) -> list[str]:
    return [words[i] for i in rng.permutation(np.arange(n) % len(words))]


def _synthesise(plan: pd.DataFrame, labels: np.ndarray, classes: list[str], p: AudioPrepareParams,
                runtime: Runtime) -> AudioSet:
    clips, lengths = render(plan, p.sample_rate, p.clip_seconds, runtime)
    words = [t if s else "<noise>" for t, s in zip(plan["text"], plan["speech"])]
    extra = {k: plan[k].tolist() for k in ("language", "voice", "rate", "pitch", "noise", "snr_db")}
    extra["speech_seconds"] = (lengths / p.sample_rate).round(3).tolist()
    if "kind" in plan:
        extra["kind"] = plan["kind"].tolist()
    return AudioSet(clips, labels.astype(np.int64), classes, [f"espeak:{p.seed}:{i}" for i in range(len(plan))],
                    plan["speaker"].tolist(), words, p.sample_rate, extra)


def synth_source(p: AudioPrepareParams, roles: dict[str, str], runtime: Runtime) -> tuple[AudioSet, np.ndarray]:
    src, rng, style = p.source, np.random.default_rng([p.seed, 31]), _style(p.synth)
    n_val = int(round(src.clips * src.val_fraction))
    parts = []
    for role, n in (("A-train", src.clips - n_val), ("A-val", n_val)):
        texts = _balanced(src.words, n, rng)
        parts.append(plan_clips(texts, voices_for(role, roles, p.voices.languages), rng, style).assign(role=role))
    plan = pd.concat(parts, ignore_index=True)
    labels = np.array([src.words.index(t) for t in plan["text"]])
    split = np.where(plan["role"] == "A-train", "train", "val")
    return _synthesise(plan, labels, list(src.words), p, runtime), split


def synth_target(p: AudioPrepareParams, roles: dict[str, str], runtime: Runtime) -> tuple[AudioSet, np.ndarray]:
    t, rng, style = p.target, np.random.default_rng([p.seed, 41]), _style(p.synth)
    others = [w for w in dict.fromkeys(t.other_words + list(p.source.words)) if w != t.wake_word]
    parts = []
    for role, split, n_pos, n_neg in (("B-train", "train", t.positives_train, t.negatives_train),
                                      ("B-test", "test", t.positives_test, t.negatives_test)):
        voices = voices_for(role, roles, p.voices.languages)
        mix = np.asarray(t.negative_mix) / sum(t.negative_mix)
        n_near, n_noise = int(round(n_neg * mix[0])), int(round(n_neg * mix[2]))
        n_other = n_neg - n_near - n_noise
        for kind, texts, noise_only in (("positive", [t.wake_word] * n_pos, False),
                                        ("near_miss", _balanced(t.near_misses, n_near, rng), False),
                                        ("other_word", _balanced(others, n_other, rng), False),
                                        ("noise", [""] * n_noise, True)):
            if texts:
                parts.append(plan_clips(texts, voices, rng, style, noise_only).assign(kind=kind, split=split))
    # Shuffled, so every render chunk mixes speech and noise-only clips (babble is made from a chunk's speech).
    plan = pd.concat(parts, ignore_index=True)
    plan = plan.iloc[rng.permutation(len(plan))].reset_index(drop=True)
    plan["babble_source"] = plan["kind"] != "positive"
    labels = (plan["kind"] == "positive").to_numpy().astype(int)
    return _synthesise(plan, labels, ["other", t.wake_word], p, runtime), plan["split"].to_numpy(object)


def speaker_split(speakers: list[str], fraction: float, seed: int, names: tuple[str, str]) -> np.ndarray:
    """Hold out a fraction of the speakers (never of the clips), so no voice is on both sides."""
    unique = sorted(set(speakers))
    held = set(np.random.default_rng([seed, 51]).permutation(unique)[:max(1, int(round(len(unique) * fraction)))])
    return np.array([names[1] if s in held else names[0] for s in speakers], dtype=object)


def load_source(p: AudioPrepareParams) -> tuple[AudioSet, np.ndarray]:
    src: AudioSourceParams = p.source
    data = (load_audio_folder(src.root, p.sample_rate, p.clip_seconds) if src.kind == "folder"
            else load_speechcommands(src.root, p.sample_rate, p.clip_seconds, src.words or None))
    return data, speaker_split(data.speakers, src.val_fraction, p.seed, ("train", "val"))


def _as_detection(data: AudioSet, wake_word: str, root: str) -> AudioSet:
    """Class folders → wake word (1) vs everything else (0)."""
    if wake_word not in data.classes:
        raise DataError(f"audio target folder {root}: no class folder named after the wake word "
                        f"{wake_word!r} (found {data.classes})")
    positive = data.classes.index(wake_word)
    data.labels = (data.labels == positive).astype(np.int64)
    data.extra["kind"] = ["positive" if w == wake_word else "other_word" for w in data.words]
    data.classes = ["other", wake_word]
    return data


def load_target(p: AudioPrepareParams) -> tuple[AudioSet, np.ndarray]:
    t: AudioTargetParams = p.target
    # <root>/background holds long negative recordings for the streams (stage audio_streams), not clips of a class.
    data = _as_detection(load_audio_folder(t.root, p.sample_rate, p.clip_seconds, (BACKGROUND,)), t.wake_word, t.root)
    if not t.test_root:
        return data, speaker_split(data.speakers, t.test_fraction, p.seed, ("train", "test"))
    test = _as_detection(load_audio_folder(t.test_root, p.sample_rate, p.clip_seconds, (BACKGROUND,)), t.wake_word,
                         t.test_root)
    merged = AudioSet(np.concatenate([data.clips, test.clips]), np.concatenate([data.labels, test.labels]),
                      data.classes, [f"train/{i}" for i in data.ids] + [f"test/{i}" for i in test.ids],
                      data.speakers + test.speakers, data.words + test.words, p.sample_rate,
                      {"kind": data.extra["kind"] + test.extra["kind"]},
                      np.concatenate([data.nan_counts, test.nan_counts]))
    return merged, np.array(["train"] * len(data.labels) + ["test"] * len(test.labels), dtype=object)


def draw_detection_pools(labels: np.ndarray, split: np.ndarray, t: AudioTargetParams, seed: int) -> pd.DataFrame:
    """Nested pools per draw: the first n training positives plus the same negatives_per_pool negatives."""
    records = []
    for d in range(t.pool_draws):
        rng = np.random.default_rng([seed, 2000 + d])
        pos = rng.permutation(np.flatnonzero((labels == POSITIVE) & (split == "train")))
        neg = rng.permutation(np.flatnonzero((labels == NEGATIVE) & (split == "train")))[:t.negatives_per_pool]
        if len(pos) < max(t.pool_sizes):
            raise DataError(f"the audio target has {len(pos)} training positives; the largest pool needs "
                            f"{max(t.pool_sizes)}")
        for n in t.pool_sizes:
            records += [(d, n, int(r)) for r in np.concatenate([pos[:n], neg])]
    return pd.DataFrame(records, columns=["draw", "per_class", "row"])


def prepare_audio(p: AudioPrepareParams, source_out: Path, target_out: Path, runtime: Runtime = CPU) -> dict:
    """Write both prepared audio sets (clips, metadata, pools); return a summary for metrics."""
    roles = speaker_roles(p.voices, p.seed) if "espeak" in (p.source.kind, p.target.kind) else {}
    source, source_split = synth_source(p, roles, runtime) if p.source.kind == "espeak" else load_source(p)
    write_prepared(source_out, source.clips, source.labels, source.classes,
                   audio_metadata_table(source, source_split), description={"role": "source", "kind": p.source.kind})
    target, split = synth_target(p, roles, runtime) if p.target.kind == "espeak" else load_target(p)
    pools = draw_detection_pools(target.labels, split, p.target, p.seed)
    write_prepared(target_out, target.clips, target.labels, target.classes, audio_metadata_table(target, split),
                   pools, description={"role": "target", "kind": p.target.kind, "wake_word": p.target.wake_word})
    test = split == "test"
    return {"source": {"clips": int(len(source.labels)), "classes": len(source.classes),
                       "val": int((source_split == "val").sum()), "speakers": len(set(source.speakers))},
            "target": {"clips": int(len(target.labels)), "test": int(test.sum()),
                       "test_positives": int((target.labels[test] == POSITIVE).sum()),
                       "train_positives": int((target.labels[~test] == POSITIVE).sum()),
                       "speakers": len(set(target.speakers))}}
