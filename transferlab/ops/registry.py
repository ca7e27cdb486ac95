"""A small model registry: versions of a named model with their metrics and the data they were trained on,
one champion per name. The index is `registry.json` (commit it, like dvc.lock); every registered version's
files are copied to registry/<name>/v<N>/ and DVC-tracked there (content addressed by md5 in the index
and in the committed .dvc file). Versions are never deleted, and a model identical to a registered version is
never registered again; promotion moves the previous champion to 'archived'.

In a git repository every registration and promotion is also an annotated git tag in GTO's format
(`<name>@v<N>.0.0` on the commit the model was trained at, `<name>#champion#<k>` for the k-th promotion), so
`gto show` and tag-driven CI/CD see the same history; the index stays the source for metrics and paths."""
from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from pathlib import Path

from transferlab.system.io import dir_md5, file_md5, read_json, write_json
from transferlab.ops.git import git, has_commits
from transferlab.ops.git import run as run_git

REGISTRY_FILE = "registry.json"
STORE = Path("registry")  # top level: DVC ignores .dvc files under a git-ignored folder such as models/
WEIGHTS = "model.safetensors"


def _load(root: Path) -> dict:
    path = root / REGISTRY_FILE
    return read_json(path) if path.exists() else {"models": {}}


def _save(root: Path, data: dict) -> None:
    write_json(root / REGISTRY_FILE, data, sort_keys=True)  # sorted: a stable diff of the committed index


def versions(root: Path | str, name: str | None = None) -> list[dict]:
    data = _load(Path(root))
    names = [name] if name else sorted(data["models"])
    return [v for n in names for v in data["models"].get(n, [])]


def champion(root: Path | str, name: str) -> dict | None:
    return next((v for v in versions(root, name) if v["stage"] == "champion"), None)


def weights_md5(model_dir: Path | str) -> str:
    return file_md5(Path(model_dir) / WEIGHTS)


def identical_version(root: Path | str, name: str, model_dir: Path | str) -> dict | None:
    """The registered version of `name` whose weights are byte-identical to model_dir's, if any: registering it
    again would add a version that is not new (a retrain that changed nothing, `promote` run twice). A relative
    model_dir is relative to root."""
    root = Path(root)
    new = weights_md5(root / model_dir)
    for v in versions(root, name):
        known = v.get("weights_md5")
        if known is None and (root / v["path"] / WEIGHTS).exists():
            known = weights_md5(root / v["path"])
        if known == new:
            return v
    return None


def register(root: Path | str, name: str, model_dir: Path | str, metrics: dict, data_md5: str,
             extra: dict | None = None) -> dict:
    """Copy the model into the store as the next version (stage 'challenger') and index it. The copy is
    DVC-tracked (its .dvc file is committed with registry.json), so a clone gets it with `dvc pull` and
    lineage reaches it. A model identical to a registered version is refused (ValueError). A relative model_dir
    is relative to root, and recorded so (lineage traces it in dvc.lock)."""
    root, model_dir = Path(root), Path(model_dir)
    source = root / model_dir
    if not (source / "card.json").exists():
        raise FileNotFoundError(f"{model_dir}: not a model directory (no card.json)")
    same = identical_version(root, name, model_dir)
    if same is not None:
        raise ValueError(f"registry: {model_dir} is identical to {name} v{same['version']} (weights md5 "
                         f"{weights_md5(source)}): nothing new to register")
    data = _load(root)
    entries = data["models"].setdefault(name, [])
    number = max((v["version"] for v in entries), default=0) + 1
    if git(root, "tag", "--list", f"{name}@v{number}.0.0"):
        raise ValueError(f"registry: git tag {name}@v{number}.0.0 exists but {REGISTRY_FILE} has no version "
                         f"{number} of {name}: the index and the tags disagree")
    store = STORE / name / f"v{number}"
    shutil.copytree(source, root / store)
    card = read_json(source / "card.json")
    entry = {"name": name, "version": number, "stage": "challenger", "path": store.as_posix(),
             "md5": dir_md5(root / store), "weights_md5": weights_md5(root / store), "source": model_dir.as_posix(),
             "metrics": metrics, "data_md5": data_md5, "code_version": card.get("code_version"),
             "registered": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), **(extra or {})}
    entry["dvc_file"] = _dvc_add(root, store)
    entry["git_tag"] = _tag(root, f"{name}@v{number}.0.0", "HEAD", entry)
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
    if target.get("git_tag"):
        count = len(git(root, "tag", "--list", f"{name}#champion#*").split())
        target["stage_tag"] = _tag(root, f"{name}#champion#{count + 1}", f"{target['git_tag']}^{{}}",
                                   {"version": version, "stage": "champion"})
    _save(root, data)
    return target


def _dvc_add(root: Path, store: Path) -> str | None:
    """`dvc add` the version's copy (in a DVC project); returns its .dvc file."""
    if not (root / ".dvc").is_dir():
        return None
    proc = subprocess.run([sys.executable, "-m", "dvc", "add", "--quiet", store.as_posix()], cwd=root,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"registry: dvc add {store} failed: {proc.stderr.strip()}")
    return f"{store.as_posix()}.dvc"


def tracked_files(root: Path | str, entry: dict) -> list[str]:
    """What to commit for a registered version: the index, its copy's .dvc file and the .gitignore beside it."""
    files = [REGISTRY_FILE]
    if entry.get("dvc_file"):
        files += [entry["dvc_file"], (Path(entry["dvc_file"]).parent / ".gitignore").as_posix()]
    return files


def _tag(root: Path, tag: str, ref: str, info: dict) -> str | None:
    """An annotated tag (GTO format) at `ref`; None outside a git repository with commits."""
    if not has_commits(root):
        return None
    message = json.dumps({k: info[k] for k in ("version", "stage", "metrics", "data_md5", "path") if k in info})
    run_git(root, "tag", "-a", tag, ref, "-m", message, what=f"registry: git tag {tag}")
    return tag
