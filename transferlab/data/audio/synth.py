"""Synthesised spoken-word clips: eSpeak NG voices → 16 kHz, 1-second clips, random placement and noise.

Clips are rendered in fixed chunks of the plan, each chunk in one worker process with its own eSpeak
instance, so the plan (and the noise, placement and level drawn from it) does not depend on the number
of workers. eSpeak itself is not bit-reproducible: a few samples can differ between calls, which is
why the prepared clips, not this code, are the cached artifact.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from transferlab.system.context import CPU, Runtime
from transferlab.system.parallel import run_jobs

_CHUNK = 256
NOISE_KINDS = ("none", "white", "pink", "babble")


@dataclass(frozen=True)
class SynthStyle:
    """Ranges the plan draws each clip's voice, placement, level and noise from."""

    rate: tuple[int, int] = (130, 260)
    pitch: tuple[int, int] = (20, 80)
    word_gap: tuple[int, int] = (0, 8)
    peak: tuple[float, float] = (0.15, 0.9)
    noise_mix: tuple[float, float, float, float] = (0.1, 0.3, 0.3, 0.3)  # none, white, pink, babble
    snr_db: tuple[float, float] = (0.0, 30.0)
    babble_snr_db: tuple[float, float] = (5.0, 30.0)


def plan_clips(texts: list[str], voices: pd.DataFrame, rng: np.random.Generator, style: SynthStyle,
               noise_only: bool = False) -> pd.DataFrame:
    """One row per clip: what is said, by which voice (speaker, language), how, and with which noise.

    `voices` has columns speaker, language, voice and is sampled uniformly per clip."""
    n = len(texts)
    pick = rng.integers(0, len(voices), n) if len(voices) else np.zeros(n, int)
    chosen = voices.iloc[pick].reset_index(drop=True) if len(voices) else pd.DataFrame(
        {"speaker": ["none"] * n, "language": ["none"] * n, "voice": ["none"] * n})
    mix = np.asarray(style.noise_mix, float)
    noise = rng.choice(len(NOISE_KINDS), n, p=mix / mix.sum())
    if noise_only:
        noise = np.where(noise == 0, 1, noise)  # a noise-only clip needs some noise
    snr = np.where(noise == 3, rng.uniform(*style.babble_snr_db, n), rng.uniform(*style.snr_db, n))
    return pd.DataFrame({
        "text": texts, "speaker": chosen["speaker"], "language": chosen["language"], "voice": chosen["voice"],
        "rate": rng.integers(style.rate[0], style.rate[1] + 1, n),
        "pitch": rng.integers(style.pitch[0], style.pitch[1] + 1, n),
        "word_gap": rng.integers(style.word_gap[0], style.word_gap[1] + 1, n),
        "offset": rng.uniform(0, 1, n).round(4), "peak": rng.uniform(*style.peak, n).round(4),
        "noise": [NOISE_KINDS[k] for k in noise], "snr_db": snr.round(2), "speech": not noise_only,
        "seed": rng.integers(0, 2**31 - 1, n),
    })


@lru_cache(maxsize=4)
def _resampling_filter(up: int, down: int) -> np.ndarray:
    """The anti-aliasing filter resample_poly would design on every call (most of its cost)."""
    from scipy.signal import firwin

    half_len = 10 * max(up, down)
    return firwin(2 * half_len + 1, 1.0 / max(up, down), window=("kaiser", 5.0))


def _trim(x: np.ndarray, rel: float = 0.02) -> np.ndarray:
    loud = np.flatnonzero(np.abs(x) > rel * (np.abs(x).max() + 1e-9))
    return x[loud[0]:loud[-1] + 1] if len(loud) else x[:0]


def _pink(n: int, rng: np.random.Generator) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))
    x = np.fft.irfft(spectrum, n)
    return x / (x.std() + 1e-12)


def _render_chunk(plan: pd.DataFrame, sample_rate: int, clip_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Render a chunk of the plan: int16 clips (n, clip_samples) and the speech length of each."""
    from scipy.signal import resample_poly

    from transferlab.data.audio.espeak import Synthesizer

    speech = []
    # A fresh synthesiser per chunk, seeded by the chunk's first clip: a chunk sounds the same whichever worker
    # renders it, after whatever that worker rendered before (and for any number of workers).
    with Synthesizer(seed=int(plan["seed"].iloc[0]) % 2**31) as synth:
        g = np.gcd(sample_rate, synth.sample_rate)
        up, down = sample_rate // g, synth.sample_rate // g
        for row in plan.itertuples(index=False):
            if not row.speech:
                speech.append(np.zeros(0, np.float32))
                continue
            raw = synth.say(row.text, row.voice, int(row.rate), int(row.pitch), int(row.word_gap)).astype(np.float32)
            x = resample_poly(_trim(raw), up, down, window=_resampling_filter(up, down).copy())
            x = _trim(x.astype(np.float32))
            speech.append(x / (np.abs(x).max() + 1e-9) if len(x) else x)
    clips = np.zeros((len(plan), clip_samples), np.float32)
    lengths = np.zeros(len(plan), np.int64)
    # Babble is made from the chunk's other utterances, never from a wake word: babble behind a negative (or
    # a noise-only clip) that says the wake word would make it a mislabelled positive.
    usable = plan["babble_source"] if "babble_source" in plan else [True] * len(plan)
    bank = [s for s, ok in zip(speech, usable) if len(s) and ok]
    for i, row in enumerate(plan.itertuples(index=False)):
        rng = np.random.default_rng(int(row.seed))
        s = speech[i][:clip_samples]
        start = int(row.offset * (clip_samples - len(s)))
        clips[i, start:start + len(s)] = s * row.peak
        lengths[i] = len(s)
        if row.noise == "none":
            continue
        if row.noise == "white":
            noise = rng.standard_normal(clip_samples)
        elif row.noise == "pink" or not bank:  # no speech in the chunk to make babble from
            noise = _pink(clip_samples, rng)
        else:  # babble: 3-5 other utterances of the chunk, at random places
            noise = np.zeros(clip_samples)
            for k in rng.integers(0, len(bank), rng.integers(3, 6)) if bank else []:
                b = bank[k][:clip_samples]
                at = rng.integers(0, clip_samples - len(b) + 1)
                noise[at:at + len(b)] += b * rng.uniform(0.5, 1.0)
            noise /= noise.std() + 1e-12
        if len(s):
            signal_power = float(np.mean((s * row.peak) ** 2))
            noise *= np.sqrt(signal_power / 10 ** (row.snr_db / 10))
        else:  # noise-only clip: a level like speech's
            noise *= row.peak / 4
        clips[i] += noise.astype(np.float32)
        peak = np.abs(clips[i]).max()
        if peak > 0.99:  # loud noise at low SNR: scale the mix down (as a recorder's gain would), never clip
            clips[i] *= 0.99 / peak
    return (np.clip(clips, -1, 1) * 32767).round().astype(np.int16), lengths


def render(plan: pd.DataFrame, sample_rate: int, clip_seconds: float,
           runtime: Runtime = CPU) -> tuple[np.ndarray, np.ndarray]:
    """Render every planned clip, spreading fixed chunks over the runtime's workers."""
    clip_samples = int(round(sample_rate * clip_seconds))
    chunks = [plan.iloc[i:i + _CHUNK] for i in range(0, len(plan), _CHUNK)]
    if not chunks:
        return np.zeros((0, clip_samples), np.int16), np.zeros(0, np.int64)
    parts = run_jobs(_render_chunk, [(c, sample_rate, clip_samples) for c in chunks], runtime)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
