"""Continuous audio for judging a wake-word detector as it is used: minutes to hours of eSpeak speech (sentences
of other words, near misses, pauses) over a noise bed at a few SNRs, with the wake word said at known times in
the positive streams and never in the negative ones.

A stream is rendered in fixed chunks (CHUNK_S seconds), each from its own seed in its own worker, so the audio
and its segment table do not depend on the number of workers. The segment table says what was said where:
start, end, text, kind (speech | near_miss | wake_word), voice, and the chunk's noise and SNR."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from transferlab.system.context import CPU, Runtime
from transferlab.system.parallel import run_jobs

CHUNK_S = 60.0
NOISES = ("white", "pink", "babble")
# A folder wake-word target's long negative recordings (any length, WAV/FLAC): <root>/background and
# <test_root>/background. They join the negative streams and count in their hours; they are never a class of clips.
BACKGROUND = "background"


@dataclass(frozen=True)
class StreamRecipe:
    """What one stream holds. `wake_every_s` > 0 makes a positive stream: one wake word per that many seconds,
    alone between pauses of at least `wake_gap_s` (a detection can then be matched to one word)."""

    words: tuple[str, ...]  # what the sentences are made of (never the wake word)
    near_misses: tuple[str, ...]
    wake_word: str
    voices: tuple[str, ...]  # eSpeak voice names (held out of training)
    snr_db: tuple[float, ...] = (20.0, 10.0, 5.0)
    sentence_words: tuple[int, int] = (1, 8)
    pause_s: tuple[float, float] = (0.2, 2.5)
    near_miss_share: float = 0.15  # of utterances: a near miss alone or inside a sentence
    silence_share: float = 0.1  # of pauses: a long one (3-10 s) of noise bed only
    wake_every_s: float = 0.0
    wake_gap_s: float = 1.5
    rate: tuple[int, int] = (130, 260)
    pitch: tuple[int, int] = (20, 80)
    peak: tuple[float, float] = (0.15, 0.9)

    def __post_init__(self) -> None:
        said = {w for text in (*self.words, *self.near_misses) for w in text.lower().split()}
        if self.wake_word.lower() in said:
            raise ValueError(f"the wake word {self.wake_word!r} is among the stream's negative words")


def _utterances(recipe: StreamRecipe, rng: np.random.Generator) -> tuple[str, str]:
    """(text, kind) of the next negative utterance."""
    n = int(rng.integers(recipe.sentence_words[0], recipe.sentence_words[1] + 1))
    words = [recipe.words[i] for i in rng.integers(0, len(recipe.words), n)]
    if rng.random() < recipe.near_miss_share:
        near = recipe.near_misses[int(rng.integers(0, len(recipe.near_misses)))]
        words[int(rng.integers(0, len(words)))] = near
        return " ".join(words), "near_miss"
    return " ".join(words), "speech"


def render_chunk(recipe: StreamRecipe, seed: int, sample_rate: int, seconds: float = CHUNK_S
                 ) -> tuple[np.ndarray, pd.DataFrame]:
    """One chunk: int16 audio and its segments (times relative to the chunk's start)."""
    from scipy.signal import resample_poly

    from transferlab.data.audio.espeak import Synthesizer
    from transferlab.data.audio.synth import _pink, _resampling_filter, _trim

    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    speech = np.zeros(n, np.float32)
    # A positive stream keeps every wake word wake_gap_s from anything else, across chunk boundaries too.
    gap = recipe.wake_gap_s if recipe.wake_every_s else 0.0
    rows, t = [], float(rng.uniform(*recipe.pause_s)) + gap
    next_wake = float(rng.uniform(0.3, 1.0) * recipe.wake_every_s) if recipe.wake_every_s else np.inf
    with Synthesizer(seed=seed % 2**31) as synth:
        g = np.gcd(sample_rate, synth.sample_rate)
        up, down = sample_rate // g, synth.sample_rate // g
        while t < seconds:
            wake = t >= next_wake
            if wake:
                t += recipe.wake_gap_s
                text, kind = recipe.wake_word, "wake_word"
                next_wake += recipe.wake_every_s
            else:
                text, kind = _utterances(recipe, rng)
            voice = recipe.voices[int(rng.integers(0, len(recipe.voices)))]
            raw = synth.say(text, voice, int(rng.integers(*recipe.rate)), int(rng.integers(*recipe.pitch)))
            x = _trim(resample_poly(_trim(raw.astype(np.float32)), up, down,
                                    window=_resampling_filter(up, down).copy()).astype(np.float32))
            start = int(t * sample_rate)
            if not len(x) or start + len(x) > n - (gap * sample_rate if wake else 0):
                break
            speech[start:start + len(x)] = x / (np.abs(x).max() + 1e-9) * rng.uniform(*recipe.peak)
            end = t + len(x) / sample_rate
            rows.append({"start_s": round(t, 4), "end_s": round(end, 4), "text": text, "kind": kind, "voice": voice})
            pause = rng.uniform(3.0, 10.0) if rng.random() < recipe.silence_share else rng.uniform(*recipe.pause_s)
            t = end + max(pause, recipe.wake_gap_s if wake else 0.0)
    noise_kind = NOISES[int(rng.integers(0, len(NOISES)))]
    snr = float(recipe.snr_db[int(rng.integers(0, len(recipe.snr_db)))])
    if noise_kind == "white":
        noise = rng.standard_normal(n)
    elif noise_kind == "pink":
        noise = _pink(n, rng)
    else:  # babble: the chunk's own negative speech, shifted and summed (never the wake word: it is cut out)
        negative = speech.copy()
        for r in rows:
            if r["kind"] == "wake_word":
                negative[int(r["start_s"] * sample_rate):int(r["end_s"] * sample_rate)] = 0
        noise = sum(np.roll(negative, int(rng.integers(0, n))) for _ in range(4)).astype(np.float64)
        noise /= noise.std() + 1e-12
    spoken = np.abs(speech) > 0
    level = float(np.sqrt(np.mean(speech[spoken] ** 2))) if spoken.any() else 0.1
    audio = speech + (noise * level / 10 ** (snr / 20)).astype(np.float32)
    peak = np.abs(audio).max()
    if peak > 0.99:  # as a recorder's gain would: scale down, never clip
        audio *= 0.99 / peak
    table = pd.DataFrame(rows, columns=["start_s", "end_s", "text", "kind", "voice"]).assign(noise=noise_kind,
                                                                                            snr_db=snr)
    return (audio * 32767).round().astype(np.int16), table


def render_stream(recipe: StreamRecipe, seconds: float, seed: int, sample_rate: int, runtime: Runtime = CPU
                  ) -> tuple[np.ndarray, pd.DataFrame]:
    """A stream of `seconds` (whole chunks): int16 audio and every segment with its absolute times."""
    chunks = max(int(np.ceil(seconds / CHUNK_S)), 1)
    seeds = np.random.default_rng([seed, 61]).integers(0, 2**31 - 1, chunks)
    parts = run_jobs(render_chunk, [(recipe, int(s), sample_rate) for s in seeds], runtime, label="streams")
    audio = np.concatenate([p[0] for p in parts])
    tables = [p[1].assign(start_s=p[1]["start_s"] + i * CHUNK_S, end_s=p[1]["end_s"] + i * CHUNK_S, chunk=i)
              for i, p in enumerate(parts)]
    return audio, pd.concat(tables, ignore_index=True)


def background_files(root: str | None, test_root: str | None) -> dict[str, list[tuple[Path, str]]]:
    """Which recordings join which negative stream, as (file, part) with part whole | first | second half:
    <test_root>/background all to test, <root>/background all to validation when there is a test_root, else each
    recording cut at its middle, the first half to validation and the second to test (the threshold is never
    chosen on audio it is then measured on)."""
    from transferlab.data.audio.clips import AUDIO_SUFFIXES

    def files(folder: str | None) -> list[Path]:
        where = Path(folder) / BACKGROUND if folder else None
        return sorted(f for f in where.rglob("*") if f.suffix.lower() in AUDIO_SUFFIXES) if where and where.is_dir() else []

    ours, test = files(root), files(test_root)
    if test_root:
        return {"validation": [(f, "whole") for f in ours], "test": [(f, "whole") for f in test]}
    return {"validation": [(f, "first half") for f in ours], "test": [(f, "second half") for f in ours]}


def background_audio(parts: list[tuple[Path, str]], sample_rate: int, start_s: float
                     ) -> tuple[np.ndarray, pd.DataFrame, pd.DataFrame]:
    """The recordings (or halves) one after another: int16 audio, their segment rows (kind background, times from
    `start_s`, where they join a stream) and one row per part for the Great Expectations gate (its length, level and
    clipping). A file that cannot be read raises DataError naming it."""
    from transferlab.data.audio.clips import read_recording

    audio, rows, checks, t = [], [], [], float(start_s)
    for path, part in parts:
        wave = read_recording(path, sample_rate)
        half = len(wave) // 2
        wave = wave[:half] if part == "first half" else wave[half:] if part == "second half" else wave
        seconds = len(wave) / sample_rate
        x = wave.astype(np.float64) / 32768
        rms = float(np.sqrt(np.mean(x ** 2))) if len(x) else 0.0
        rows.append({"start_s": round(t, 4), "end_s": round(t + seconds, 4), "text": f"{path.name} ({part})",
                     "kind": BACKGROUND, "voice": "", "noise": "recorded", "snr_db": np.nan})
        checks.append({"id": f"{path.as_posix()} ({part})", "seconds": seconds,
                       "rms_dbfs": 20 * np.log10(max(rms, 1e-10)),
                       "clipped_fraction": float(np.mean(np.abs(x) >= 0.999)) if len(x) else 0.0})
        audio.append(wave)
        t += seconds
    return (np.concatenate(audio) if audio else np.zeros(0, np.int16), pd.DataFrame(rows), pd.DataFrame(checks))


def background_expectations(gxe) -> list:
    """A user's recording: at least a second of it, not digital silence, hardly clipped. What it says is the
    user's word: no check can tell that the wake word is never in it."""
    return [gxe.ExpectColumnValuesToBeBetween(column="seconds", min_value=1.0,
                                              meta={"why": "a background recording shorter than a window"}),
            gxe.ExpectColumnValuesToBeBetween(column="rms_dbfs", min_value=-90.0, max_value=0.0,
                                              meta={"why": "digital silence: nothing to falsely accept"}),
            gxe.ExpectColumnValuesToBeBetween(column="clipped_fraction", min_value=0, max_value=0.01)]


def word_centres(segments: pd.DataFrame) -> np.ndarray:
    """The centre (s) of every wake word the stream holds."""
    w = segments[segments["kind"] == "wake_word"]
    return ((w["start_s"] + w["end_s"]) / 2).to_numpy(float)


def chunk_table(name: str, audio: np.ndarray, segments: pd.DataFrame, sample_rate: int, wake_word: str,
                positive: bool) -> pd.DataFrame:
    """One row per chunk of a rendered stream, for the Great Expectations gate: its level, clipping, how many
    wake words it holds (and how many it should), and how many negative segments say the wake word."""
    n = int(round(CHUNK_S * sample_rate))
    said = segments["text"].str.lower().str.split().map(lambda ws: wake_word.lower() in ws)
    rows = []
    for i in range(max(int(np.ceil(len(audio) / n)), 1)):
        x = audio[i * n:(i + 1) * n].astype(np.float64) / 32768
        seg = segments[segments["chunk"] == i]
        rms = float(np.sqrt(np.mean(x ** 2))) if len(x) else 0.0
        rows.append({"id": f"{name}/chunk{i}", "seconds": len(x) / sample_rate,
                     "rms_dbfs": 20 * np.log10(max(rms, 1e-10)), "clipped_fraction": float(np.mean(np.abs(x) >= 0.999)),
                     "wake_words": int((seg["kind"] == "wake_word").sum()), "wake_words_min": int(positive),
                     "wake_words_max": 1_000 if positive else 0,
                     "negatives_saying_wake_word": int((said[seg.index] & (seg["kind"] != "wake_word")).sum()),
                     "nonempty_segments": int((seg["end_s"] > seg["start_s"]).sum()), "segments": len(seg)})
    return pd.DataFrame(rows)


def stream_expectations(gxe, min_rms_dbfs: float) -> list:
    return [gxe.ExpectTableRowCountToBeBetween(min_value=1),
            gxe.ExpectColumnValuesToBeBetween(column="seconds", min_value=CHUNK_S - 1e-6, max_value=CHUNK_S + 1e-6),
            gxe.ExpectColumnValuesToBeBetween(column="rms_dbfs", min_value=min_rms_dbfs, max_value=0.0,
                                              meta={"why": "a silent chunk failed to render"}),
            gxe.ExpectColumnValuesToBeBetween(column="clipped_fraction", min_value=0, max_value=0.001),
            gxe.ExpectColumnValuesToBeBetween(column="negatives_saying_wake_word", min_value=0, max_value=0,
                                              meta={"why": "a negative that says the wake word is a mislabelled positive"}),
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="wake_words", column_B="wake_words_min", or_equal=True),
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="wake_words_max", column_B="wake_words", or_equal=True),
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="nonempty_segments", column_B="segments",
                                                        or_equal=True),
            gxe.ExpectColumnValuesToBeBetween(column="segments", min_value=1)]
