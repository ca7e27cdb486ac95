"""Backbones pre-trained elsewhere, imported as the same artifact `pretrain` writes (model.safetensors + card),
so fine-tuning, evaluation, predict and lineage treat them like our own. One module per kind of source; each
records the weights file's md5 as a parent in the card, and none ever unpickles arbitrary objects."""
from __future__ import annotations

from importlib import import_module
from pathlib import Path

from torch import nn

from transferlab.params import ImportedBackboneParams
from transferlab.models.pretrained.files import BackboneImportError, hub_checkpoint, read_state_dict

__all__ = ["BackboneImportError", "import_backbone", "weights_file", "hub_checkpoint", "read_state_dict"]

# kind → its module; a kind's module (and its library: timm, torchaudio) loads only when it is used. Each module
# has import_<kind>(entry, ...) → (model, card) and locate_<kind>(entry) → the weights file it reads.
_MODULES = {"torchvision": "torchvision", "file": "torchvision", "timm": "timm", "torchaudio": "audio",
            "silero_vad": "audio"}


def _function(entry: ImportedBackboneParams, verb: str):
    return getattr(import_module(f".{_MODULES[entry.kind]}", __name__), f"{verb}_{entry.kind}")


def weights_file(entry: ImportedBackboneParams) -> Path:
    """The local file the entry's weights are (or, once downloaded, will be) read from, without downloading:
    the pipeline hashes it before importing, so a changed file re-imports and everything downstream re-runs."""
    return _function(entry, "locate")(entry)


def import_backbone(entry: ImportedBackboneParams, *, image_size: int = 28, channels: int = 1,
                    sample_rate: int = 16000, clip_seconds: float = 1.0) -> tuple[nn.Module, dict]:
    """The imported network (its own head) and its card. The stored samples' shape (images: image_size and
    channels from prepare; audio: sample_rate and clip_seconds from audio.prepare) is what the network takes: it
    adapts them to what its weights expect. Everything is read and checked before anything is written, so a
    failure leaves no output."""
    importer = _function(entry, "import")
    if entry.track == "vision":
        return importer(entry, image_size, channels)
    return importer(entry, sample_rate, clip_seconds)


def weights_manifest(backbones: list[ImportedBackboneParams]) -> dict[str, dict]:
    """name → the weights file each entry reads and its md5 (None until a first import downloads it)."""
    from transferlab.system.io import file_md5, relative_path

    out = {}
    for entry in backbones:
        path = weights_file(entry)
        out[entry.name] = {"kind": entry.kind, "file": relative_path(path),
                           "md5": file_md5(path) if path.is_file() else None}
    return out
