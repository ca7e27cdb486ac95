"""timm backbones: kind timm, `arch` a timm model name with its pretrained tag (resnet18.a1_in1k). Weights come
from the Hugging Face cache through huggingface_hub's own loader (downloaded into the cache when missing and the
network allows; HF_HUB_OFFLINE=1 works once cached), or from a local file at `path` in timm's own key layout."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from transferlab.models.artifacts import _names, make_card
from transferlab.models.preprocessing import image_preprocessing
from transferlab.system.io import file_md5, relative_path
from transferlab.models import TimmNet, count_parameters
from transferlab.params import ImportedBackboneParams
from transferlab.models.pretrained.files import BackboneImportError, fit_state, read_state_dict

WEIGHTS_NAME = "model.safetensors"  # what timm's own hub repos hold, and what timm's loader prefers


def pretrained_cfg(arch: str):
    """timm's PretrainedCfg of `arch` (its default tag when untagged): preprocessing, hf_hub_id, classifier."""
    import timm
    from timm.models import get_pretrained_cfg, split_model_name_tag

    name, tag = split_model_name_tag(arch)
    if not timm.is_model(name):
        raise BackboneImportError(f"arch {arch!r} is no timm model (e.g. {_names(timm.list_pretrained(), 4)})")
    try:
        cfg = get_pretrained_cfg(arch)
    except RuntimeError as err:  # an unknown tag
        raise BackboneImportError(f"arch {arch!r}: {err} Known: {_names(timm.list_pretrained(f'{name}.*'), 8)}") \
            from None
    if cfg is None:
        raise BackboneImportError(f"arch {arch!r}: timm knows no pretrained weights for it")
    return cfg


def hub_cache() -> Path:
    """huggingface_hub's cache folder. Read from the environment now, not at its import: huggingface_hub fixes
    its constants when first imported, and a caller (a test, a stage) may set HF_HOME/HF_HUB_CACHE later."""
    from huggingface_hub import constants

    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path(constants.HF_HUB_CACHE)


def _offline() -> bool:
    from huggingface_hub import constants

    return constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


def hub_file(arch: str) -> tuple[str, str | None, str]:
    """(repo id, revision or None, file name) of the weights of `arch` on the Hugging Face hub."""
    from timm.models._hub import hf_split

    cfg = pretrained_cfg(arch)
    if not cfg.hf_hub_id:
        raise BackboneImportError(f"arch {arch!r}: timm has no Hugging Face repo for its weights (only {cfg.url}): "
                                  "download that file and use kind timm with path")
    filename = cfg.hf_hub_filename or WEIGHTS_NAME
    if not filename.endswith(".safetensors"):
        raise BackboneImportError(f"arch {arch!r}: its weights are {cfg.hf_hub_id}/{filename}, not safetensors "
                                  "(never unpickled from the hub): convert it and use kind timm with path")
    repo_id, revision = hf_split(cfg.hf_hub_id)
    return repo_id, revision, filename


def expected_path(repo_id: str, revision: str | None, filename: str) -> Path:
    """Where huggingface_hub keeps (or will keep) the file: <cache>/models--org--name/snapshots/<commit>/file,
    the commit being refs/<revision>'s content once the repo has been fetched (unknown before: "<commit>")."""
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.file_download import REGEX_COMMIT_HASH, repo_folder_name

    cached = try_to_load_from_cache(repo_id, filename, cache_dir=hub_cache(), revision=revision)
    if isinstance(cached, str):
        return Path(cached)
    folder = hub_cache() / repo_folder_name(repo_id=repo_id, repo_type="model")
    ref = folder / "refs" / (revision or "main")
    commit = (revision if revision and REGEX_COMMIT_HASH.fullmatch(revision)
              else ref.read_text().strip() if ref.is_file() else "<commit>")
    return folder / "snapshots" / commit / filename


def locate_timm(entry: ImportedBackboneParams) -> Path:
    return Path(entry.path) if entry.path else expected_path(*hub_file(entry.arch))


def fetch_timm(arch: str) -> tuple[dict[str, torch.Tensor], Path, str]:
    """The weights' state dict, the cached file and its repo id: the cached file when present (no network at all),
    else huggingface_hub's download into the cache. Missing offline: the expected path and how to fill it."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    repo_id, revision, filename = hub_file(arch)
    path = expected_path(repo_id, revision, filename)
    if not path.is_file():
        try:
            path = Path(hf_hub_download(repo_id, filename, revision=revision, cache_dir=hub_cache(),
                                        local_files_only=_offline()))
        except (OSError, EntryNotFoundError) as err:  # offline, no connection, HTTP errors, gated or absent repo
            why = "HF_HUB_OFFLINE is set" if _offline() else f"downloading failed ({str(err).splitlines()[0][:120]})"
            raise BackboneImportError(
                f"timm {arch}: {filename} of Hugging Face repo {repo_id} is not in the cache (expected {path}) and "
                f"{why}. Without network: on a machine with network run `hf download {repo_id} {filename}` (older "
                f"huggingface_hub: `huggingface-cli download {repo_id} {filename}`) and copy its hub cache folder "
                f"{path.parents[2].name} into {hub_cache()} (or point HF_HOME at a copied cache), or use kind timm "
                "with path: the local .safetensors file"
            ) from None
    return read_state_dict(path), path, repo_id



def _head_classes(cfg, state: dict[str, torch.Tensor]) -> int:
    """The number of outputs of the state dict's own head (a file may be fine-tuned to other classes)."""
    classifier = cfg.classifier[0] if isinstance(cfg.classifier, (tuple, list)) else cfg.classifier
    weight = state.get(f"{classifier}.weight")
    return int(weight.shape[0]) if weight is not None and weight.ndim in (2, 4) else int(cfg.num_classes or 1000)


def class_names(model: TimmNet, outputs: int) -> list[str]:
    """ImageNet class names (timm ships them) when the head is an ImageNet head: each description's first name,
    the synset added where two share it (crane, maillot); else class_<i>."""
    from timm.data import ImageNetInfo, infer_imagenet_subset

    subset = infer_imagenet_subset(model.net)
    if not subset:
        return [f"class_{i}" for i in range(outputs)]
    info = ImageNetInfo(subset)
    synsets, short = info.label_names(), [d.split(",")[0] for d in info.label_descriptions()]
    names = [s if short.count(s) == 1 else f"{s} ({n})" for s, n in zip(short, synsets)]
    return names if len(names) == outputs and len(set(names)) == outputs else [f"class_{i}" for i in range(outputs)]


def import_timm(entry: ImportedBackboneParams, image_size: int, channels: int) -> tuple[TimmNet, dict]:
    """The imported network (its head: the weights' own) and its card. Everything is read and checked before
    anything is written, so a failure leaves no output. image_size/channels: the stored samples (prepare)."""
    from transferlab.models.timmnet import timm_preprocessing

    cfg = pretrained_cfg(entry.arch)
    if entry.path:
        path, hf_hub_id = Path(entry.path), cfg.hf_hub_id
        state = read_state_dict(path)
    else:
        state, path, hf_hub_id = fetch_timm(entry.arch)
    outputs = _head_classes(cfg, state)
    try:
        model = TimmNet(entry.arch, outputs, channels)
        net_input = timm_preprocessing(model.net)
    except ValueError as err:
        raise BackboneImportError(f"arch {entry.arch!r}: {err}") from None
    fit_state(model, state, path, model.timm_key, f"timm {model.model_name}")
    md5 = file_md5(path)
    preprocessing = {**image_preprocessing(image_size, channels),
                     # Applied inside the network (its `adapter` module), after the usual scaling above.
                     "network_input": {**net_input, "channels": 3, "image_size": net_input["crop_size"],
                                       "crop_pct": cfg.crop_pct, "crop_mode": cfg.crop_mode,
                                       "channel_repeat": channels == 1, "applied_by": "adapter"}}
    source = {"kind": entry.kind, "arch": entry.arch, "file": relative_path(path), "md5": md5, "hf_hub_id": hf_hub_id,
              **({"preprocessing_of": f"timm {cfg.architecture}.{cfg.tag}"} if entry.path else {})}
    card = make_card(architecture={"name": f"timm:{entry.arch}", "kwargs": net_input},
                     classes=class_names(model, outputs), preprocessing=preprocessing,
                     params={"backbone": entry.model_dump()},
                     parents=[{"role": "pretrained-weights", "path": source["file"], "md5": md5}],
                     metrics={"parameters": count_parameters(model)}, extra={"task": "source", "imported": source})
    model.eval()
    return model, card
