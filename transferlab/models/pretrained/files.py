"""What every kind of imported backbone shares: its error, reading a weights file safely, where caches live."""
from __future__ import annotations

import hashlib
import os
import pickle
import re
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

import torch

from transferlab.models.artifacts import _names, read_weights
from transferlab.system.errors import DataError


class BackboneImportError(DataError):
    """A backbone cannot be imported; the one-line message names the file or name at fault and the fix."""


def hub_checkpoint(url: str) -> Path:
    """Where torch.hub keeps (and looks for) a downloaded file: $TORCH_HOME/hub/checkpoints/<file name of url>
    (torchvision weights and torchaudio bundles both download through it)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


HUB_NAME_HASH = torch.hub.HASH_REGEX  # "-<hex>." in a hub file name: the start of the file's sha256


def check_hub_hash(path: Path) -> None:
    """torch.hub's check of a download (the file's sha256 starts with the hash in its name, as resnet18-f37072fd.pth
    says f37072fd), applied to a file found in its cache as well: a damaged file, or other weights saved under that
    name, is refused instead of being fine-tuned as if it were the named ones."""
    match = HUB_NAME_HASH.search(path.name)
    if not match or not match.group(1):
        return
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    got, expected = digest.hexdigest(), match.group(1)
    if not got.startswith(expected):
        raise BackboneImportError(
            f"{path}: its sha256 starts {got[:len(expected)]}, not {expected} as its file name says (torch.hub checks "
            "this on download): the file is damaged or holds other weights. Delete it to download it again; for "
            "weights of your own use `kind: file` with their path")


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
        raise BackboneImportError(f"{path}: refused: it holds more than tensors ({_why_unpickling(err)}), and "
                                  "weights_only loading never runs code") from None
    except (RuntimeError, EOFError, OSError) as err:
        raise BackboneImportError(f"{path}: not a readable torch.save file ({str(err).splitlines()[0][:160]})") from None
    if isinstance(state, dict) and len(state) == 1 and next(iter(state)) in ("state_dict", "model"):
        state = next(iter(state.values()))  # a training checkpoint wrapping the weights
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BackboneImportError(f"{path}: not a state dict (a mapping of names to tensors)")
    return state


def _why_unpickling(err: Exception) -> str:
    """The reason in torch's weights_only refusal ("Trying to load unsupported GLOBAL posix.system whose module
    posix is blocked"), a whole sentence, without the advice around it on how to load the file anyway."""
    text = str(err)
    for pattern in (r"(Trying to load unsupported GLOBAL [^\n]+?)\.?\n", r"WeightsUnpickler error: ([^\n]+?)\.?\n",
                    r"(Unsupported (?:global|operand)[^\n]+?)\.?\n"):
        found = re.search(pattern, text + "\n")
        if found:
            return found.group(1).split(". ")[0]
    return " ".join(text.split()).split(". ")[0].rstrip(".") or type(err).__name__


def check_keys(ours: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor], source: Path, what: str) -> None:
    """Every key present with our shape, and no other; otherwise one error naming the keys at fault (`what` names
    the architecture)."""
    reshaped = [f"{k} is {list(theirs[k].shape)} not {list(v.shape)}" for k, v in ours.items()
                if k in theirs and theirs[k].shape != v.shape]
    missing = [k for k in ours if k not in theirs]
    extra = [k for k in theirs if k not in ours]
    problems = ([f"shape differs: {_names(reshaped)}"] if reshaped else []) \
        + ([f"{len(missing)} key(s) missing: {_names(missing)}"] if missing else []) \
        + ([f"{len(extra)} unexpected key(s): {_names(extra)}"] if extra else [])
    if problems:
        raise BackboneImportError(f"{source}: does not fit {what}: {'; '.join(problems)}")


def fit_state(model: torch.nn.Module, state: dict[str, torch.Tensor], source: Path, key_of: Callable[[str], str],
              what: str) -> None:
    """Copy tensors keyed as in another library's state dict (`key_of`: our key → theirs) into the model; any
    missing, extra or reshaped key, named, fails."""
    ours = model.state_dict()
    theirs = {key_of(k): k for k in ours}
    check_keys({t: ours[k] for t, k in theirs.items()}, state, source, what)
    model.load_state_dict({v: state[k] for k, v in theirs.items()}, strict=True)
