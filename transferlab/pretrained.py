"""Backbones pre-trained elsewhere, imported as the same artifact `pretrain` writes (model.safetensors + card),
so fine-tuning, evaluation, predict and lineage treat them like our own.

kind torchvision: torchvision's weights by enum name, through torchvision's API, so the file lands in (and is
reused from) $TORCH_HOME/hub/checkpoints/. kind file: a local state dict for a torchvision architecture.
Either way the weights file's md5 is a parent in the card, and loading never unpickles arbitrary objects."""
from __future__ import annotations

import os
import pickle
from pathlib import Path
from urllib.parse import urlparse

import torch

from .artifacts import _names, image_preprocessing, make_card, read_weights
from .data.sources import DataError
from .io import file_md5
from .models import TorchvisionNet, count_parameters
from .params import ImportedBackboneParams


class BackboneImportError(DataError):
    """A backbone cannot be imported; the one-line message names the file or name at fault and the fix."""


def torchvision_weights(arch: str, weights: str | None):
    """torchvision's weights enum member for `arch` (`weights` None: the arch's DEFAULT)."""
    import torchvision.models as tvm

    known = tvm.list_models(module=tvm)
    if arch not in known:
        raise BackboneImportError(f"arch {arch!r} is no torchvision classification model (known: {_names(known, 12)})")
    enum = tvm.get_model_weights(arch)
    if weights is None:
        return enum.DEFAULT
    try:
        return enum[weights]
    except KeyError:
        raise BackboneImportError(f"{arch} has no weights {weights!r} (known: {', '.join(m.name for m in enum)})") from None


def checkpoint_path(weights) -> Path:
    """Where torch.hub keeps (and looks for) this weights file: $TORCH_HOME/hub/checkpoints/<file name of url>."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)


def network_preprocessing(weights) -> dict:
    """What the weights expect, from weights.transforms(): resize, crop, interpolation, mean, std (RGB)."""
    t = weights.transforms()
    one = (lambda v: int(v[0]) if isinstance(v, (list, tuple)) else int(v))  # noqa: E731
    return {"resize_size": one(t.resize_size), "crop_size": one(t.crop_size),
            "interpolation": t.interpolation.value, "mean": [float(v) for v in t.mean],
            "std": [float(v) for v in t.std]}


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from .safetensors (no code can run) or .pth/.pt through torch.load(weights_only=True),
    which refuses any pickled object other than tensors and plain containers."""
    if not path.is_file():
        raise BackboneImportError(f"{path}: not found")
    if path.suffix == ".safetensors":
        return read_weights(path)
    if path.suffix not in (".pth", ".pt"):
        raise BackboneImportError(f"{path}: expected a .safetensors, .pth or .pt file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise BackboneImportError(f"{path}: refused: holds more than tensors, which weights_only loading never runs "
                           f"({first[:160]})") from None
    except (RuntimeError, EOFError, OSError) as err:
        raise BackboneImportError(f"{path}: not a readable torch.save file ({str(err).splitlines()[0][:160]})") from None
    if isinstance(state, dict) and len(state) == 1 and next(iter(state)) in ("state_dict", "model"):
        state = next(iter(state.values()))  # a training checkpoint wrapping the weights
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BackboneImportError(f"{path}: not a state dict (a mapping of names to tensors)")
    return state


def fetch_torchvision(weights) -> tuple[dict[str, torch.Tensor], Path]:
    """The weights' state dict and the file it came from: the cached file when present, else torchvision's
    download (into the same place). Without network and cache: the exact expected path, and how to fill it."""
    path = checkpoint_path(weights)
    if path.is_file():
        return read_state_dict(path), path
    try:
        state = weights.get_state_dict(progress=False, weights_only=True)
    except OSError as err:  # URLError, HTTPError, socket errors are all OSErrors
        raise BackboneImportError(
            f"{path}: not found, and downloading {weights.url} failed ({str(err)[:120]}). Without network: "
            f"download that URL on a machine with network (or copy {path.name} from its "
            f"$TORCH_HOME/hub/checkpoints/) and place it at {path}, or set TORCH_HOME to the folder holding "
            "hub/checkpoints/") from None
    return state, path


def fit_state(model: TorchvisionNet, state: dict[str, torch.Tensor], source: Path) -> None:
    """Copy torchvision-keyed tensors into the model; any missing, extra or reshaped key, named, fails."""
    ours = model.state_dict()
    theirs = {model.tv_key(k): k for k in ours}
    reshaped = [f"{k} is {list(state[k].shape)} not {list(ours[v].shape)}" for k, v in theirs.items()
                if k in state and state[k].shape != ours[v].shape]
    missing = [k for k in theirs if k not in state]
    extra = [k for k in state if k not in theirs]
    problems = ([f"shape differs: {_names(reshaped)}"] if reshaped else []) \
        + ([f"{len(missing)} key(s) missing: {_names(missing)}"] if missing else []) \
        + ([f"{len(extra)} unexpected key(s): {_names(extra)}"] if extra else [])
    if problems:
        raise BackboneImportError(f"{source}: does not fit torchvision {model.arch}: {'; '.join(problems)}")
    model.load_state_dict({v: state[k] for k, v in theirs.items()}, strict=True)


def _head_classes(arch: str, state: dict[str, torch.Tensor]) -> int:
    """The number of outputs of the state dict's own head (a file may be fine-tuned to other classes)."""
    from .models.tvnet import build_torchvision, classifier_name

    key = classifier_name(build_torchvision(arch)) + ".weight"
    return int(state[key].shape[0]) if key in state and state[key].ndim == 2 else 1000


def _display(path: Path) -> str:
    """Paths inside the working directory relative (as DVC writes them), others absolute."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


def import_backbone(entry: ImportedBackboneParams, image_size: int, channels: int) -> tuple[TorchvisionNet, dict]:
    """The imported network (its head: the weights' own) and its card. Everything is read and checked before
    anything is written, so a failure leaves no output. image_size/channels: the stored samples (prepare)."""
    try:
        weights = torchvision_weights(entry.arch, entry.weights)
    except BackboneImportError:
        if entry.kind == "torchvision" or entry.weights is not None:
            raise
        raise BackboneImportError(f"arch {entry.arch!r}: no torchvision weights to take the preprocessing from") from None
    if entry.kind == "torchvision":
        state, path = fetch_torchvision(weights)
        categories = list(weights.meta.get("categories") or [])
    else:
        path = Path(entry.path)
        state = read_state_dict(path)
        categories = []
    net_input = network_preprocessing(weights)
    outputs = _head_classes(entry.arch, state)
    if len(categories) != outputs or len(set(categories)) != outputs:
        categories = [f"class_{i}" for i in range(outputs)]
    model = TorchvisionNet(entry.arch, outputs, channels, **net_input)
    fit_state(model, state, path)
    md5 = file_md5(path)
    preprocessing = {**image_preprocessing(image_size, channels),
                     # Applied inside the network (its `adapter` module), after the usual scaling above.
                     "network_input": {**net_input, "channels": 3, "image_size": net_input["crop_size"],
                                       "channel_repeat": channels == 1, "applied_by": "adapter"}}
    source = {"kind": entry.kind, "arch": entry.arch, "file": _display(path), "md5": md5,
              **({"weights": weights.name, "url": weights.url} if entry.kind == "torchvision"
                 else {"preprocessing_of": f"{entry.arch} {weights.name}"})}
    metrics = {"parameters": count_parameters(model),
               **({f"imagenet_{k}": v for k, v in weights.meta.get("_metrics", {}).get("ImageNet-1K", {}).items()}
                  if entry.kind == "torchvision" else {})}
    card = make_card(architecture={"name": f"tv:{entry.arch}", "kwargs": net_input}, classes=categories,
                     preprocessing=preprocessing, params={"backbone": entry.model_dump()},
                     parents=[{"role": "pretrained-weights", "path": source["file"], "md5": md5}], metrics=metrics,
                     extra={"task": "source", "imported": source})
    model.eval()
    return model, card
