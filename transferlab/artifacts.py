"""Self-describing model artifacts: weights in safetensors plus a JSON card. Loading runs no pickle."""
from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

from safetensors.torch import load_file, save_file
from torch import nn

from .engine import PCM_SCALE, PIXEL_MEAN, PIXEL_STD
from .io import dir_md5, read_json, write_json
from .models import create_model
from .transfer import freeze_modules

WEIGHTS_FILE, CARD_FILE = "model.safetensors", "card.json"
CARD_FORMAT = "transferlab-model/1"


def code_version() -> str:
    """The git commit of the code, with '+dirty' when tracked files differ from it."""
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, check=True).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def parent(path: Path | str, role: str) -> dict:
    """A reference to an input artifact by content hash."""
    path = Path(path)
    return {"role": role, "path": path.as_posix(), "md5": dir_md5(path) if path.is_dir() else None}


def image_preprocessing(image_size: int, channels: int) -> dict:
    return {"modality": "image", "image_size": image_size, "channels": channels, "scale": 1 / 255,
            "mean": PIXEL_MEAN, "std": PIXEL_STD}


def audio_preprocessing(sample_rate: int, clip_samples: int) -> dict:
    return {"modality": "audio", "sample_rate": sample_rate, "clip_samples": clip_samples, "channels": 1,
            "scale": PCM_SCALE}


def make_card(*, architecture: dict, classes: list[str], preprocessing: dict, frozen_modules: tuple[str, ...] | list[str] = (), params: dict | None = None,
              parents: list[dict] | None = None, metrics: dict | None = None, extra: dict | None = None,
              training_stats: dict | None = None) -> dict:
    """The JSON card. `training_stats` (transferlab.drift.training_statistics) lets `predict` warn about inputs
    unlike the training data; cards without it still load and predict, unchecked."""
    return {
        "format": CARD_FORMAT,
        "architecture": architecture,  # {"name": registry name, "kwargs": {...}}
        "classes": list(classes),
        "preprocessing": preprocessing,
        "frozen_modules": list(frozen_modules),
        "params": params or {},
        "parents": parents or [],
        "metrics": metrics or {},
        "code_version": code_version(),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        **({"training_stats": training_stats} if training_stats else {}),
        **(extra or {}),
    }


def save_model(out_dir: Path | str, model: nn.Module, card: dict) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out_dir / WEIGHTS_FILE), metadata={"format": CARD_FORMAT})
    write_json(out_dir / CARD_FILE, card)


def build_from_card(card: dict) -> nn.Module:
    arch = card["architecture"]
    model = create_model(arch["name"], num_classes=len(card["classes"]), in_chans=card["preprocessing"]["channels"],
                         **arch.get("kwargs", {}))
    freeze_modules(model, card.get("frozen_modules", []))
    return model


def load_model(model_dir: Path | str) -> tuple[nn.Module, dict]:
    """Rebuild the network from its card and load the weights; frozen parts come back frozen."""
    model_dir = Path(model_dir)
    card_path = model_dir / CARD_FILE
    if not card_path.exists():
        raise FileNotFoundError(f"{card_path} not found: not a transferlab model directory")
    card = read_json(card_path)
    if card.get("format") != CARD_FORMAT:
        raise ValueError(f"{card_path}: unknown format {card.get('format')!r}, expected {CARD_FORMAT!r}")
    model = build_from_card(card)
    model.load_state_dict(load_file(str(model_dir / WEIGHTS_FILE)), strict=True)
    model.eval()
    return model, card
