"""The user's own data folders as a DVC dependency.

A folder named in params (an ImageFolder target, a test set, an audio folder, a torchvision data set on disk)
lies wherever the user keeps it, so dvc.yaml cannot list it: DVC would never see an image in it change. The
`data_roots` stage (always run; it only hashes) writes the md5 of every such folder into a small manifest,
and the prepare stages depend on that manifest: a changed byte in a user's folder changes the manifest, and
DVC re-runs prepare and everything after it. Lineage reads the manifest to name each folder's md5."""
from __future__ import annotations

import json
from pathlib import Path

from transferlab.system.io import dir_md5

# (params key of the folder, the section whose `kind` says whether it is a folder at all)
ROOT_KEYS = ("prepare.source.root", "prepare.target.root", "prepare.target.test_root",
             "audio.prepare.source.root", "audio.prepare.target.root", "audio.prepare.target.test_root")


def _get(params, dotted: str):
    node = params
    for part in dotted.split("."):
        node = getattr(node, "validation" if part == "validate" else part, None)
    return node


def data_roots(params) -> dict[str, str]:
    """params key → folder, for every folder the params name (embedded data names none)."""
    return {key: value for key in ROOT_KEYS if isinstance(value := _get(params, key), str) and value}


def manifest(params, root: Path | str = ".") -> dict:
    """{"roots": {key: {"path", "md5", "files"}}} of every folder the params name; a missing one is an error
    naming its key."""
    from transferlab.system.errors import DataError

    root = Path(root)
    out = {}
    for key, path in data_roots(params).items():
        folder = root / path
        if not folder.is_dir():
            raise DataError(f"{key}: folder {path} does not exist")
        out[key] = {"path": path, "md5": dir_md5(folder),
                    "files": sum(1 for p in folder.rglob("*") if p.is_file())}
    return {"roots": out}


def changed_roots(manifest_path: Path | str, root: Path | str = ".") -> list[str]:
    """Folders whose content differs from what the manifest recorded (what `dvc repro` would pick up)."""
    path = Path(manifest_path)
    if not path.exists():
        return []
    changed = []
    for key, entry in json.loads(path.read_text()).get("roots", {}).items():
        folder = Path(root) / entry["path"]
        if not folder.is_dir():
            changed.append(f"{key}: {entry['path']} is gone")
        elif dir_md5(folder) != entry["md5"]:
            changed.append(f"{key}: {entry['path']} changed since it was hashed (md5 was {entry['md5']})")
    return changed
