"""`transferlab detect`: a wake-word model slid over recordings of any length and rate (experiments/wakeword/streaming.py),
with the hop, smoothing, refractory period and threshold its card records, or the user's overrides."""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from transferlab.ops.predict import input_files

DETECTOR_KEY = "detector"  # the card's section: StreamSettings, the threshold and the false-accept rate it was chosen for


class DetectError(ValueError):
    """A model or option that cannot detect; one line naming it."""


@dataclass
class FileDetections:
    path: str
    seconds: float = 0.0  # audio length
    detections: list = field(default_factory=list)  # transferlab.experiments.wakeword.streaming.Detection
    wall_s: float = 0.0  # scoring time (reading the file excluded)
    error: str | None = None

    @property
    def real_time_factor(self) -> float | None:
        return self.wall_s / self.seconds if self.seconds else None

    def as_dict(self) -> dict:
        return {"path": self.path, "seconds": round(self.seconds, 3), "error": self.error,
                "real_time_factor": None if self.real_time_factor is None else round(self.real_time_factor, 5),
                "detections": [{"time_s": round(d.time_s, 2), "score": round(d.score, 4)} for d in self.detections]}


def positive_class(card: dict, where: Path) -> int:
    """The wake word's class index: a detector's card has two classes, one of them `other`."""
    classes = card.get("classes") or []
    if card["preprocessing"].get("modality") != "audio" or len(classes) != 2 or "other" not in classes:
        raise DetectError(f"{where}: not a wake-word detector (an audio model with classes [other, WORD]); "
                          f"its classes: {classes}")
    return 1 - classes.index("other")


def settings_for(card: dict, where: Path, threshold: float | None, hop_s: float | None):
    """(StreamSettings, threshold, what the threshold is) from the card's detector section and the overrides."""
    from transferlab.experiments.wakeword.streaming import StreamSettings

    section = card.get(DETECTOR_KEY) or {}
    known = StreamSettings.__dataclass_fields__
    settings = StreamSettings(**{k: v for k, v in section.items() if k in known})
    if hop_s is not None:
        settings = replace(settings, hop_s=hop_s)
    if threshold is None:
        if section.get("threshold") is None:
            raise DetectError(f"{where}: the card records no detection threshold (the model was not evaluated on a "
                              "stream): pass --threshold")
        threshold = float(section["threshold"])
        rate = section.get("target_fa_per_hour")
        chosen = f"card's threshold {threshold:.3g}" + (f", chosen for {rate:g} false accepts/hour" if rate else "")
    else:
        chosen = f"threshold {threshold:.3g} (--threshold)"
    if not 0.0 <= threshold <= 1.0:
        raise DetectError(f"threshold {threshold}: a probability, between 0 and 1")
    return settings, threshold, chosen


def detect_files(model_dir: Path, paths: list[Path], threshold: float | None = None, hop_s: float | None = None
                 ) -> tuple[list[FileDetections], str]:
    """Detections per file (a file that cannot be read gets its error, the rest go on) and a line saying which
    threshold and settings were used."""
    from transferlab.experiments.wakeword.streaming import detect_stream, read_stream
    from transferlab.data.sources import DataError, display_name
    from transferlab.models.artifacts import load_model

    model, card = load_model(model_dir)
    where = Path(model_dir) / "card.json"
    positive = positive_class(card, where)
    settings, threshold, chosen = settings_for(card, where, threshold, hop_s)
    prep = card["preprocessing"]
    rate, clip = int(prep["sample_rate"]), int(prep["clip_samples"])
    results = []
    for f in input_files(paths, "audio"):
        result = FileDetections(display_name(f))
        try:
            if not f.exists():
                raise DataError(f"{display_name(f)}: no such file")
            stream = read_stream(f, rate)
        except DataError as err:
            result.error = str(err)
            results.append(result)
            continue
        start = time.perf_counter()
        result.detections, _, _ = detect_stream(model, stream, rate, clip, positive, threshold, settings)
        result.wall_s, result.seconds = time.perf_counter() - start, len(stream) / rate
        results.append(result)
    return results, (f"{chosen}; hop {settings.hop_s:g} s, smoothing over {settings.smooth_frames} windows, "
                     f"refractory {settings.refractory_s:g} s")
