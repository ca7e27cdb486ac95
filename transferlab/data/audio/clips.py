"""Audio clips in one in-memory form (AudioSet), their metadata table, and loaders for users' audio."""
from __future__ import annotations

import os
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from transferlab.system.errors import DataError
from transferlab.system.io import content_hash

AUDIO_SUFFIXES = (".wav", ".flac")
AUDIO_METADATA_COLUMNS = ["id", "label", "label_name", "split", "speaker", "word", "content_hash", "sample_rate",
                          "samples", "duration_s", "rms", "peak", "clipped_fraction", "nan_count"]


@dataclass
class AudioSet:
    clips: np.ndarray  # int16 (N, T), all at one sample rate and length
    labels: np.ndarray  # int64 (N,)
    classes: list[str]
    ids: list[str]
    speakers: list[str]
    words: list[str]
    sample_rate: int
    extra: dict[str, list] = field(default_factory=dict)
    nan_counts: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.clips.ndim != 2 or self.clips.dtype != np.int16:
            raise DataError(f"clips must be int16 (N,T), got {self.clips.dtype} {self.clips.shape}")
        if not (len(self.clips) == len(self.labels) == len(self.ids) == len(self.speakers) == len(self.words)):
            raise DataError("clips, labels, ids, speakers and words differ in length")
        if self.nan_counts is None:
            self.nan_counts = np.zeros(len(self.labels), np.int64)


def clip_levels(clips: np.ndarray, rows: int = 512) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per clip: RMS and peak of the float waveform, and the fraction of samples at full scale. In blocks of
    `rows` clips: the whole default source as float32 is 1 GiB, and its temporaries took the prepare stage's peak
    memory past 4 GiB (per-row results are the same either way)."""
    rms, peak = np.zeros(len(clips), np.float32), np.zeros(len(clips), np.float32)
    clipped = np.zeros(len(clips), np.float64)
    for i in range(0, len(clips), rows):
        block = clips[i:i + rows]
        x = block.astype(np.float32) / 32768.0
        rms[i:i + rows] = np.sqrt((x ** 2).mean(1))
        peak[i:i + rows] = np.abs(x).max(1)
        clipped[i:i + rows] = (np.abs(block.astype(np.int32)) >= 32767).mean(1)
    return rms.round(5), peak.round(5), clipped.round(5)


def audio_metadata_table(data: AudioSet, split: np.ndarray) -> pd.DataFrame:
    rms, peak, clipped = clip_levels(data.clips)
    table = pd.DataFrame({
        "id": data.ids, "label": data.labels, "label_name": [data.classes[i] for i in data.labels], "split": split,
        "speaker": data.speakers, "word": data.words,
        "content_hash": [content_hash(row.tobytes()) for row in data.clips],
        "sample_rate": data.sample_rate, "samples": data.clips.shape[1],
        "duration_s": round(data.clips.shape[1] / data.sample_rate, 6),
        "rms": rms, "peak": peak, "clipped_fraction": clipped, "nan_count": data.nan_counts,
    })
    for key, values in data.extra.items():
        table[key] = values
    return table


def mono_at(wave: np.ndarray, rate: int, sample_rate: int) -> np.ndarray:
    """Float samples (T,) or (T, C) at `rate` → mono float32 at `sample_rate`."""
    import torch
    import torchaudio.functional as AF

    x = np.asarray(wave, np.float32)
    if x.ndim == 2:
        x = x.mean(1)
    if rate != sample_rate:
        x = AF.resample(torch.from_numpy(x), rate, sample_rate).numpy()
    return x


def fit_clip(wave: np.ndarray, rate: int, sample_rate: int, clip_samples: int) -> np.ndarray:
    """Float samples (T,) or (T, C) at `rate` → mono float32 at `sample_rate`, centred and cut/padded to length."""
    x = mono_at(wave, rate, sample_rate)
    if len(x) >= clip_samples:
        start = (len(x) - clip_samples) // 2
        return x[start:start + clip_samples]
    out = np.zeros(clip_samples, np.float32)
    start = (clip_samples - len(x)) // 2
    out[start:start + len(x)] = x
    return out


# Data-chunk sizes that mean "unknown", not a length: writers that cannot seek back (pipes, streams) leave
# 0, 0xFFFFFFFF (also RF64's pointer to its ds64 chunk) or a near-2 GiB guess in the header.
_PLACEHOLDER_SIZES = (0, 0x7FFFF000)
_FRAME_ALIGNED_TAGS = {1, 3, 6, 7, 0xFFFE}  # PCM, float, A-law, mu-law, extensible: block_align is one frame


def wav_shortfall(path: Path) -> tuple[int, int, str] | None:
    """(what the header's data chunk declares, what the file holds, unit) for a RIFF/RF64 WAV cut short; None
    for a whole WAV or another format. libsndfile does not tell: it quietly reads what is there."""
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX", b"RF64", b"BW64") or head[8:] != b"WAVE":
            return None
        order, size = (">" if head[:4] == b"RIFX" else "<"), os.fstat(fh.fileno()).st_size
        pos, tag, align, ds64, data = 12, None, 0, None, None
        while pos + 8 <= size:
            fh.seek(pos)
            cid, n = struct.unpack(order + "4sI", fh.read(8))
            body = fh.read(min(n, 16))
            if cid == b"ds64" and len(body) >= 16:
                ds64 = struct.unpack("<Q", body[8:16])[0]
            elif cid == b"fmt " and len(body) >= 14:
                tag, align = struct.unpack(order + "H", body[:2])[0], struct.unpack(order + "H", body[12:14])[0]
            elif cid == b"data":
                data = (ds64 if n == 0xFFFFFFFF and ds64 else n, size - pos - 8)
            pos += 8 + n + (n & 1)
    if data is None or data[0] == _PLACEHOLDER_SIZES[0] or data[0] >= _PLACEHOLDER_SIZES[1] or data[1] >= data[0]:
        return None
    if tag in _FRAME_ALIGNED_TAGS and align:
        return data[0] // align, data[1] // align, "frames"
    return data[0], data[1], "bytes of audio data"


def _decodable_frames(path: Path) -> int:
    """Frames a damaged file yields before decoding fails (a lower bound: the failing block is lost)."""
    import soundfile as sf

    n = 0
    try:
        with sf.SoundFile(str(path)) as f:
            for block in f.blocks(blocksize=256, dtype="float32"):
                n += len(block)
    except (RuntimeError, sf.LibsndfileError):
        pass
    return n


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """Float samples and rate of one file, all of it: an unreadable, empty or truncated file (fewer samples than
    its header declares) raises DataError naming the file."""
    import soundfile as sf

    try:
        short = wav_shortfall(path)
        f = sf.SoundFile(str(path))
    except (RuntimeError, sf.LibsndfileError, OSError, ValueError) as err:
        raise DataError(f"cannot read audio file {path}: {err}") from None
    if short:
        f.close()
        raise DataError(f"{path}: truncated: header says {short[0]:,} {short[2]}, file holds {short[1]:,}")
    with f:
        declared, rate = f.frames, f.samplerate
        try:
            wave = f.read(dtype="float32", always_2d=False)
        except (RuntimeError, sf.LibsndfileError) as err:
            # FLAC cut short: the header (STREAMINFO) still states the full length; decoding loses sync.
            raise DataError(f"{path}: truncated or corrupt: header says {declared:,} frames, decoding fails after "
                            f"{_decodable_frames(path):,} ({' '.join(str(err).split())})") from None
    if len(wave) < declared:
        raise DataError(f"{path}: truncated: header says {declared:,} frames, file holds {len(wave):,}")
    if wave.size == 0:
        raise DataError(f"audio file {path} is empty (no samples)")
    return wave, rate


LONG_CLIP = 1.5  # a recording this many times the clip length is cut, and the cut is reported


def to_clip(wave: np.ndarray, rate: int, sample_rate: int, clip_samples: int) -> np.ndarray:
    """Float samples at `rate` → the stored int16 clip (NaNs as silence: callers count them first)."""
    x = fit_clip(np.nan_to_num(wave), rate, sample_rate, clip_samples)
    return (np.clip(x, -1, 1) * 32767).round().astype(np.int16)


def read_clip(path: Path, sample_rate: int, clip_samples: int) -> tuple[np.ndarray, int]:
    """One file → int16 clip and its NaN count; an unreadable, empty or truncated file raises naming the file."""
    wave, rate = read_audio(path)
    return to_clip(wave, rate, sample_rate, clip_samples), int((~np.isfinite(wave)).sum())


def speaker_of(path: Path) -> str:
    """Speech Commands names files <speaker>_nohash_<n>.wav; otherwise the file's stem is its speaker."""
    return path.stem.split("_nohash_")[0]


def read_recording(path: Path, sample_rate: int) -> np.ndarray:
    """A whole recording, any length, rate and channel count → mono int16 at `sample_rate`. An unreadable, empty,
    truncated or NaN-holding file raises DataError naming the file (a recording is used as it is: no silent fix)."""
    wave, rate = read_audio(path)
    bad = int((~np.isfinite(wave)).sum())
    if bad:
        raise DataError(f"{path}: {bad:,} of {wave.size:,} samples are NaN or infinite: not audio")
    return (np.clip(mono_at(wave, rate, sample_rate), -1, 1) * 32767).round().astype(np.int16)


def load_audio_folder(root: str | Path, sample_rate: int, clip_seconds: float, skip: tuple[str, ...] = ()) -> AudioSet:
    """A folder per class of WAV/FLAC files (any rate, mono or stereo), converted to mono clips; folders named in
    `skip` are no class (a wake-word target's background recordings)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"audio folder {root} does not exist or is not a directory")
    classes = sorted(p.name for p in root.iterdir()
                     if p.is_dir() and not p.name.startswith(("_", ".")) and p.name not in skip)
    files = [(f, c) for c, name in enumerate(classes) for f in sorted((root / name).rglob("*"))
             if f.suffix.lower() in AUDIO_SUFFIXES]
    if not files:
        raise DataError(f"audio folder {root}: no {'/'.join(AUDIO_SUFFIXES)} files in class folders")
    clip_samples = int(round(sample_rate * clip_seconds))
    clips, nans, long, bad = [], [], [], []
    for f, _ in files:
        try:
            wave, rate = read_audio(f)
        except DataError as err:  # every bad file of the folder in one error, not one per run
            bad.append(str(err))
            continue
        clips.append(to_clip(wave, rate, sample_rate, clip_samples))
        nans.append(int((~np.isfinite(wave)).sum()))
        if len(wave) > LONG_CLIP * rate * clip_seconds:
            long.append(f"{f.relative_to(root).as_posix()} ({len(wave) / rate:.1f} s)")
    if bad:
        raise DataError(f"audio folder {root}: {len(bad)} file(s) cannot be used:\n  " + "\n  ".join(bad))
    if long:  # said, not silent: the label may belong to a part of the recording that was cut away
        print(f"warning: {root}: {len(long)} clip(s) longer than {LONG_CLIP:g} x {clip_seconds:g} s were cut to their "
              f"middle {clip_seconds:g} s: {', '.join(long[:5])}{' ...' if len(long) > 5 else ''}", file=sys.stderr)
    return AudioSet(np.stack(clips), np.array([c for _, c in files], np.int64), classes,
                    [f.relative_to(root).as_posix() for f, _ in files], [speaker_of(f) for f, _ in files],
                    [classes[c] for _, c in files], sample_rate, nan_counts=np.array(nans, np.int64))


def load_speechcommands(root: str | Path, sample_rate: int, clip_seconds: float,
                        words: list[str] | None = None) -> AudioSet:
    """torchaudio's SPEECHCOMMANDS already on disk (never downloaded); files are read with soundfile."""
    from torchaudio.datasets import SPEECHCOMMANDS

    try:
        ds = SPEECHCOMMANDS(str(root), download=False)
    except (RuntimeError, FileNotFoundError) as err:
        raise DataError(f"SPEECHCOMMANDS not found under {root} ({err}); nothing is downloaded at run time") from None
    items = [ds.get_metadata(i) for i in range(len(ds))]  # (relative path, rate, label, speaker, utterance)
    if words:
        items = [it for it in items if it[2] in words]
    if not items:
        raise DataError(f"SPEECHCOMMANDS under {root}: no clips for words {words}")
    classes = sorted({it[2] for it in items})
    clip_samples = int(round(sample_rate * clip_seconds))
    base = Path(ds._archive)
    clips, nans = zip(*(read_clip(base / it[0], sample_rate, clip_samples) for it in items))
    return AudioSet(np.stack(clips), np.array([classes.index(it[2]) for it in items], np.int64), classes,
                    [it[0] for it in items], [str(it[3]) for it in items], [it[2] for it in items], sample_rate,
                    nan_counts=np.array(nans, np.int64))
