"""A small model registry: versions of a named model with their metrics and the data they were trained on,
one champion per name. The index is `registry.json` (commit it, like dvc.lock); every registered version's
files are copied to models/registry/<name>/v<N>/ (content addressed by md5 in the index). Versions are
never deleted; promotion moves the previous champion to 'archived'."""
from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

from .io import dir_md5

REGISTRY_FILE = "registry.json"
STORE = Path("models") / "registry"


def _load(root: Path) -> dict:
    path = root / REGISTRY_FILE
    return json.loads(path.read_text()) if path.exists() else {"models": {}}


def _save(root: Path, data: dict) -> None:
    path = root / REGISTRY_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def versions(root: Path | str, name: str | None = None) -> list[dict]:
    data = _load(Path(root))
    names = [name] if name else sorted(data["models"])
    return [v for n in names for v in data["models"].get(n, [])]


def champion(root: Path | str, name: str) -> dict | None:
    return next((v for v in versions(root, name) if v["stage"] == "champion"), None)


def register(root: Path | str, name: str, model_dir: Path | str, metrics: dict, data_md5: str,
             extra: dict | None = None) -> dict:
    """Copy the model into the store as the next version (stage 'challenger') and index it."""
    root, model_dir = Path(root), Path(model_dir)
    if not (model_dir / "card.json").exists():
        raise FileNotFoundError(f"{model_dir}: not a model directory (no card.json)")
    data = _load(root)
    entries = data["models"].setdefault(name, [])
    number = max((v["version"] for v in entries), default=0) + 1
    store = STORE / name / f"v{number}"
    shutil.copytree(model_dir, root / store)
    card = json.loads((model_dir / "card.json").read_text())
    entry = {"name": name, "version": number, "stage": "challenger", "path": store.as_posix(),
             "md5": dir_md5(root / store), "source": model_dir.as_posix(), "metrics": metrics, "data_md5": data_md5,
             "code_version": card.get("code_version"),
             "registered": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), **(extra or {})}
    entries.append(entry)
    _save(root, data)
    return entry


def promote(root: Path | str, name: str, version: int) -> dict:
    """Make `version` the champion; the previous champion is archived."""
    root = Path(root)
    data = _load(root)
    entries = data["models"].get(name, [])
    target = next((v for v in entries if v["version"] == version), None)
    if target is None:
        raise ValueError(f"registry: {name} has no version {version}")
    for v in entries:
        if v["stage"] == "champion":
            v["stage"] = "archived"
    target["stage"] = "champion"
    target["promoted"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    _save(root, data)
    return target
