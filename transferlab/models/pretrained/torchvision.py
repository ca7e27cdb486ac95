"""torchvision backbones: kind torchvision (weights by enum name, through torchvision's API, so the file lands in
and is reused from $TORCH_HOME/hub/checkpoints/) and kind file (a local state dict for a torchvision arch)."""
from __future__ import annotations

from pathlib import Path

import torch

from transferlab.models.artifacts import _names, make_card
from transferlab.models.preprocessing import image_preprocessing
from transferlab.system.io import file_md5, relative_path
from transferlab.models import TorchvisionNet, count_parameters
from transferlab.params import ImportedBackboneParams
from transferlab.models.pretrained.files import BackboneImportError, check_hub_hash, fit_state, hub_checkpoint, read_state_dict


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


def network_preprocessing(weights) -> dict:
    """What the weights expect, from weights.transforms(): resize, crop, interpolation, mean, std (RGB)."""
    t = weights.transforms()
    one = (lambda v: int(v[0]) if isinstance(v, (list, tuple)) else int(v))  # noqa: E731
    return {"resize_size": one(t.resize_size), "crop_size": one(t.crop_size),
            "interpolation": t.interpolation.value, "mean": [float(v) for v in t.mean],
            "std": [float(v) for v in t.std]}


def fetch_torchvision(weights) -> tuple[dict[str, torch.Tensor], Path]:
    """The weights' state dict and the file it came from: the cached file when present, else torchvision's
    download (into the same place). Without network and cache: the exact expected path, and how to fill it."""
    path = hub_checkpoint(weights.url)
    if path.is_file():
        check_hub_hash(path)
        return read_state_dict(path), path
    try:
        state = weights.get_state_dict(progress=False, check_hash=True, weights_only=True)
    except OSError as err:  # URLError, HTTPError, socket errors are all OSErrors
        raise BackboneImportError(
            f"{path}: not found, and downloading {weights.url} failed ({str(err)[:120]}). Without network: "
            f"download that URL on a machine with network (or copy {path.name} from its "
            f"$TORCH_HOME/hub/checkpoints/) and place it at {path}, or set TORCH_HOME to the folder holding "
            "hub/checkpoints/") from None
    return state, path



def _head_classes(arch: str, state: dict[str, torch.Tensor]) -> int:
    """The number of outputs of the state dict's own head (a file may be fine-tuned to other classes)."""
    from transferlab.models.tvnet import build_torchvision, classifier_name

    key = classifier_name(build_torchvision(arch)) + ".weight"
    return int(state[key].shape[0]) if key in state and state[key].ndim == 2 else 1000


def locate_torchvision(entry: ImportedBackboneParams) -> Path:
    return hub_checkpoint(torchvision_weights(entry.arch, entry.weights).url)


def locate_file(entry: ImportedBackboneParams) -> Path:
    return Path(entry.path)


def import_file(entry: ImportedBackboneParams, image_size: int, channels: int) -> tuple[TorchvisionNet, dict]:
    return import_torchvision(entry, image_size, channels)


def import_torchvision(entry: ImportedBackboneParams, image_size: int, channels: int) -> tuple[TorchvisionNet, dict]:
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
    fit_state(model, state, path, model.tv_key, f"torchvision {model.arch}")
    md5 = file_md5(path)
    preprocessing = {**image_preprocessing(image_size, channels),
                     # Applied inside the network (its `adapter` module), after the usual scaling above.
                     "network_input": {**net_input, "channels": 3, "image_size": net_input["crop_size"],
                                       "channel_repeat": channels == 1, "applied_by": "adapter"}}
    source = {"kind": entry.kind, "arch": entry.arch, "file": relative_path(path), "md5": md5,
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
