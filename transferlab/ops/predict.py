"""Prediction with a saved model: safetensors + card, the card's own preprocessing, per-file errors (unreadable
or truncated files), and a warning for each silent clip and each file whose statistics lie outside those of the
model's training data (see transferlab/data/drift.py)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from transferlab.data.drift import out_of_range, sample_statistics

# torch (with the model and the file readers, which raise DataError) is imported inside the functions that read
# files or run the model: importing ops must not load torch into the flows.

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg"}


def silent_rms(preprocessing: dict) -> float:
    """RMS (full scale 1.0) below which a clip is silent: the card's `min_rms` if it records one, else the
    audio validation's default, under which no clip reaches training."""
    from transferlab.params import AudioValidateParams

    return float(preprocessing.get("min_rms", AudioValidateParams.model_fields["min_rms"].default))


@dataclass
class Prediction:
    path: str
    label: str | None = None
    probabilities: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)  # e.g. out of the training distribution: the label is a guess

    def as_dict(self) -> dict:
        return {"path": self.path, "label": self.label, "probabilities": self.probabilities, "error": self.error,
                "warnings": list(self.warnings)}


def input_files(paths: list[Path], modality: str) -> list[Path]:
    """Files as given, and inside folders every file of the model's modality (recursively, sorted)."""
    suffixes = AUDIO_SUFFIXES if modality == "audio" else IMAGE_SUFFIXES
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in suffixes)
        else:
            files.append(p)  # named explicitly: tried even with an odd suffix, and a missing one is reported
    return files


def load_sample(path: Path, preprocessing: dict) -> tuple[np.ndarray, list[str]]:
    """One file → the stored sample format the model was trained on (uint8 image or int16 clip), and warnings
    about what was done to it on the way (a long recording cut to the model's clip length)."""
    from transferlab.data.sources import DataError, display_name

    if not path.exists():
        raise DataError(f"{display_name(path)}: no such file")
    if preprocessing["modality"] == "audio":
        from transferlab.data.audio.clips import LONG_CLIP, read_audio, to_clip

        wave, rate = read_audio(path)
        bad = int((~np.isfinite(wave)).sum())
        if bad:
            raise DataError(f"{display_name(path)}: {bad:,} of {wave.size:,} samples are NaN or infinite: not audio")
        seconds, clip_s = len(wave) / rate, preprocessing["clip_samples"] / preprocessing["sample_rate"]
        notes = [f"{seconds:.1f} s long: only its middle {clip_s:g} s was classified (the model hears "
                 f"{clip_s:g} s clips)"] if seconds > LONG_CLIP * clip_s else []
        return to_clip(wave, rate, preprocessing["sample_rate"], preprocessing["clip_samples"]), notes
    from transferlab.data.sources import canonical, read_image

    size, channels = preprocessing["image_size"], preprocessing["channels"]
    return canonical(read_image(path, size, channels)[None], size, channels)[0], []


def checks_inputs(card: dict) -> bool:
    """Whether the card carries training statistics to judge inputs by (older cards do not)."""
    return bool(card.get("training_stats"))


def predict_files(model_dir: Path, paths: list[Path], batch_size: int = 256) -> list[Prediction]:
    """Class and probabilities per file; a file that cannot be read gets its error and the rest go on. A file
    unlike the training data (by the card's training statistics) still gets its label, with warnings."""
    import torch

    from transferlab.models.artifacts import load_model
    from transferlab.data.sources import DataError, display_name
    from transferlab.core.engine import predict_logits

    model, card = load_model(model_dir)
    classes = card["classes"]
    if not classes:
        raise ValueError(f"{model_dir}: an embedding model (no classes) cannot label files")
    prep = card["preprocessing"]
    results, good, samples = [], [], []
    for f in input_files(paths, prep.get("modality", "image")):
        pred = Prediction(display_name(f))
        try:
            sample, pred.warnings = load_sample(f, prep)
            samples.append(sample)
            good.append(pred)
        except DataError as err:
            pred.error = str(err)
        results.append(pred)
    if samples:
        probs = torch.softmax(predict_logits(model, torch.from_numpy(np.stack(samples)), batch_size=batch_size), 1)
        stats = sample_statistics(np.stack(samples), prep.get("modality", "image"))
        quiet = silent_rms(prep) if "rms_dbfs" in stats else None
        for i, (pred, p) in enumerate(zip(good, probs)):
            pred.label = classes[int(p.argmax())]
            pred.probabilities = {c: round(float(v), 5) for c, v in zip(classes, p)}
            pred.warnings += out_of_range({k: v[i] for k, v in stats.items()}, card.get("training_stats"))
            rms = 10 ** (float(stats["rms_dbfs"][i]) / 20) if quiet is not None else None
            if rms is not None and rms < quiet:  # checked with or without training statistics in the card
                pred.warnings.insert(0, f"silent: RMS {rms:.5f} below {quiet:g} (a clip this quiet fails the audio "
                                        "validation): the label means nothing")
    return results
