"""Self-describing model artifacts: weights in safetensors plus a JSON card. Loading runs no pickle, and a
missing, foreign or tampered file is one ModelFileError naming the file and what is wrong with it."""
from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from transferlab.system.context import Runtime
from transferlab.system.errors import DataError
from transferlab.system.io import dir_md5, relative_path, save_tensors, write_json
from transferlab.models import create_model, freeze_modules, is_registered, list_families, list_models, modality

WEIGHTS_FILE, CARD_FILE = "model.safetensors", "card.json"
CODE_PATHS = ("transferlab", "stages", "flows", "dvc.yaml", "pyproject.toml", "constraints.txt")
CARD_FORMAT = "transferlab-model/1"


def code_version() -> str:
    """The git commit of the code, with '+dirty' when tracked files differ from it."""
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        # Dirty means the code differs from the commit: the pipeline's own outputs (dvc.lock, params changed by
        # `dvc exp run`, .dvc files of data) change in every run and say nothing about the code.
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS],
                               capture_output=True, text=True, check=True).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def parent(path: Path | str, role: str) -> dict:
    """A reference to an input artifact by content hash (DVC's, so `lineage` names it alike), relative to the
    project when inside it: a card stays true when the project is cloned elsewhere."""
    path = Path(path)
    return {"role": role, "path": relative_path(path), "md5": dir_md5(path) if path.is_dir() else None}


def make_card(*, architecture: dict, classes: list[str], preprocessing: dict, frozen_modules: tuple[str, ...] | list[str] = (), params: dict | None = None,
              parents: list[dict] | None = None, metrics: dict | None = None, extra: dict | None = None,
              training_stats: dict | None = None, runtime: Runtime | None = None) -> dict:
    """The JSON card. `training_stats` (transferlab.data.drift.training_statistics) lets `predict` warn about inputs
    unlike the training data; cards without it still load and predict, unchecked. `runtime`: the context the
    model was trained in (its precision goes in the card; None: fp32)."""
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
        # Results are bit-for-bit repeatable for a given seed, precision and thread count: say which made it.
        "runtime": {"threads": torch.get_num_threads(), "precision": "fp32" if runtime is None else runtime.precision},
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        **({"training_stats": training_stats} if training_stats else {}),
        **(extra or {}),
    }


def save_model(out_dir: Path | str, model: nn.Module, card: dict) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_tensors(state, str(out_dir / WEIGHTS_FILE), metadata={"format": CARD_FORMAT})
    write_json(out_dir / CARD_FILE, card)


class ModelFileError(DataError):
    """A model directory that cannot be loaded; the message is one line naming the file and the problem. A
    DataError, so stage scripts and commands that report those in one line report this too."""


def _one_line(text: object, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _names(items: list[str], shown: int = 3) -> str:
    return ", ".join(items[:shown]) + (f" and {len(items) - shown} more" if len(items) > shown else "")


def _positive_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _str_list(v: object) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def card_problems(card: object) -> list[str]:
    """What makes a parsed card unloadable, in words; empty when it is fine. Checked before anything is built,
    so a tampered card is named instead of failing deep inside a constructor."""
    if not isinstance(card, dict):
        return [f"not a JSON object but a JSON {type(card).__name__}"]
    if card.get("format") != CARD_FORMAT:
        return [f"unknown format {card.get('format')!r} (expected {CARD_FORMAT!r})"]
    missing = [k for k in ("architecture", "classes", "preprocessing") if k not in card]
    if missing:
        return [f"missing key(s) {', '.join(missing)}"]
    problems, arch, prep, classes = [], card["architecture"], card["preprocessing"], card["classes"]
    name = arch.get("name") if isinstance(arch, dict) else None
    if not isinstance(name, str):
        problems.append(f"architecture must be an object with a name, got {_one_line(repr(arch), 60)}")
        name = None
    elif not is_registered(name):
        problems.append(f"unknown architecture {name!r} (known: {', '.join(list_models() + list_families())})")
        name = None
    else:
        kwargs = arch.get("kwargs", {})
        widths = kwargs.get("widths") if isinstance(kwargs, dict) else None
        if not isinstance(kwargs, dict):
            problems.append(f"architecture.kwargs must be an object, got {_one_line(repr(kwargs), 60)}")
        elif widths is not None and not (isinstance(widths, list) and widths and all(map(_positive_int, widths))):
            problems.append(f"architecture.kwargs.widths must be a list of positive integers, got "
                            f"{_one_line(repr(widths), 60)}")
    if not _str_list(classes):
        problems.append(f"classes must be a list of names, got {_one_line(repr(classes), 60)}")
    elif len(set(classes)) != len(classes):
        problems.append("classes: the same name twice")
    if not _str_list(card.get("frozen_modules", [])):
        problems.append("frozen_modules must be a list of module names")
    parents = card.get("parents", [])
    if not (isinstance(parents, list) and all(isinstance(x, dict) for x in parents)):
        problems.append("parents must be a list of objects")
    needs = {"image": ("image_size", "channels"), "audio": ("sample_rate", "clip_samples", "channels")}
    kind = prep.get("modality", "image") if isinstance(prep, dict) else None  # cards before audio: images
    if not isinstance(prep, dict):
        problems.append(f"preprocessing must be an object, got {_one_line(repr(prep), 60)}")
    elif kind not in needs:
        problems.append(f"preprocessing.modality must be 'image' or 'audio', got {_one_line(repr(kind), 60)}")
    else:
        problems += [f"preprocessing.{k} must be a positive integer, got {_one_line(repr(prep.get(k)), 60)}"
                     for k in needs[kind] if not _positive_int(prep.get(k))]
        if name and modality(name) != kind:
            problems.append(f"preprocessing.modality is {kind!r} but architecture {name!r} takes "
                            f"{modality(name)} input")
    return problems


def read_card(model_dir: Path | str) -> dict:
    """A model directory's card, parsed and checked (card_problems)."""
    path = Path(model_dir) / CARD_FILE
    if not path.is_file():
        raise ModelFileError(f"{path}: not found: not a transferlab model directory")
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ModelFileError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise ModelFileError(f"{path}: invalid JSON ({err.msg} at line {err.lineno} column {err.colno})") from None
    problems = card_problems(card)
    if problems:
        raise ModelFileError(f"{path}: {'; '.join(problems)}")
    return card


def _pickle_kind(head: bytes) -> str | None:
    """Which pickle-based format a file's first bytes announce, if any. Never when they look like safetensors
    (an 8-byte header length, then '{'), whose length bytes can happen to read as a pickle opcode."""
    if head[8:9] == b"{":
        return None
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a Python pickle"
    return "a zip archive (torch.save's pickle format)" if head[:4] == b"PK\x03\x04" else None


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file. Only the safetensors parser reads it, which runs no code; a pickle
    or torch.save file is named as such and refused, never unpickled (unpickling can run any code)."""
    if not path.is_file():
        raise ModelFileError(f"{path}: not found")
    with open(path, "rb") as fh:
        head = fh.read(9)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        kind = _pickle_kind(head)
        if kind:
            raise ModelFileError(f"{path}: {kind}, not safetensors: refused, never unpickled (unpickling can run "
                                 "code)") from None
        raise ModelFileError(f"{path}: not a safetensors file ({_one_line(err)})") from None


def load_weights(model: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Copy a state dict into the card's network; what does not fit (reshaped, retyped, missing, extra), in
    words. load_state_dict matches the keys: it knows modules' own conventions (a frozen BatchNorm drops
    num_batches_tracked)."""
    expected = model.state_dict()
    reshaped = [f"{k} is {list(state[k].shape)} not {list(v.shape)}" for k, v in expected.items()
                if k in state and state[k].shape != v.shape]
    retyped = [f"{k} is {state[k].dtype}" for k, v in expected.items()
               if k in state and state[k].is_floating_point() != v.is_floating_point()]
    if reshaped or retyped:  # load_state_dict would raise a many-line error on these
        return ([f"shape differs from the card's network: {_names(reshaped)}"] if reshaped else []) \
            + ([f"wrong dtype: {_names(retyped)}"] if retyped else [])
    result = model.load_state_dict(state, strict=False)
    missing, extra = result.missing_keys, result.unexpected_keys
    return ([f"{len(missing)} tensor(s) missing: {_names(missing)}"] if missing else []) \
        + ([f"{len(extra)} unexpected tensor(s): {_names(extra)}"] if extra else [])


def nonfinite_tensors(state: dict[str, torch.Tensor]) -> list[str]:
    """Tensors holding NaN or inf (a diverged run or an edit): such a model predicts NaN for everything."""
    return [f"{k} ({n:,} values)" for k, t in state.items()
            if t.is_floating_point() and (n := int((~torch.isfinite(t)).sum()))]


def build_from_card(card: dict) -> nn.Module:
    arch = card["architecture"]
    model = create_model(arch["name"], num_classes=len(card["classes"]), in_chans=card["preprocessing"]["channels"],
                         **arch.get("kwargs", {}))
    unknown = sorted(set(card.get("frozen_modules", [])) - {n for n, _ in model.named_modules()})
    if unknown:
        raise ValueError(f"frozen_modules names no module of the network: {_names(unknown)}")
    freeze_modules(model, card.get("frozen_modules", []))
    return model


def load_model(model_dir: Path | str) -> tuple[nn.Module, dict]:
    """Rebuild the network from its card and load the weights; frozen parts come back frozen. Anything wrong
    with either file raises ModelFileError."""
    model_dir = Path(model_dir)
    card = read_card(model_dir)
    arch = card["architecture"]
    described = (f"the card's {arch['name']} {_one_line(json.dumps(arch.get('kwargs', {})), 80)} with "
                 f"{len(card['classes'])} classes, {card['preprocessing']['channels']} channel(s)")
    try:
        model = build_from_card(card)
    except Exception as err:  # noqa: BLE001 - a constructor fails in too many ways on odd kwargs to list them
        raise ModelFileError(f"{model_dir / CARD_FILE}: cannot build {described}: {_one_line(err)}") from None
    weights = model_dir / WEIGHTS_FILE
    state = read_weights(weights)
    problems = load_weights(model, state)
    if problems:
        raise ModelFileError(f"{weights}: does not match {described}: {'; '.join(problems)}")
    nonfinite = nonfinite_tensors(state)
    if nonfinite:
        raise ModelFileError(f"{weights}: NaN/inf in {_names(nonfinite)}")
    model.eval()
    return model, card
