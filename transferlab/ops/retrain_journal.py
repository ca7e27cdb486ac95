"""A retrain is a transaction: the inbox, the pool, its .dvc file and dvc.lock end as they were unless the
whole retrain (intake → dvc add → dvc repro → git commit) succeeds.

Before anything is touched the journal saves the files the retrain will rewrite; intake records each batch
*before* copying it into the pool (so a kill mid-copy is covered too). On failure `rollback` removes the
batches' folders from the pool, moves each batch back into the inbox, restores and unstages the saved files
and checks the DVC outputs out again. A run killed so hard that it could not roll back leaves the journal
behind: the next run rolls it back first. No torch here: the retrain flow calls it directly."""
from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
from pathlib import Path

from transferlab.system.io import read_json, write_json
from transferlab.ops.git import git

JOURNAL_DIR = Path(".transferlab")


def journal_path(root: Path | str, track: str) -> Path:
    return Path(root) / JOURNAL_DIR / f"retrain-{track}.journal.json"


def pending(root: Path | str, track: str) -> dict | None:
    path = journal_path(root, track)
    return read_json(path) if path.exists() else None


def begin(root: Path | str, track: str, files: list[str]) -> Path:
    """Open the transaction: save `files` (paths relative to root; None for one that does not exist yet)."""
    root = Path(root)
    path = journal_path(root, track)
    if path.exists():
        raise RuntimeError(f"{path} exists: an earlier retrain did not finish; roll it back first")
    saved = {f: (root / f).read_text() if (root / f).is_file() else None for f in files}
    write_json(path, {"track": track, "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                  "files": saved, "batches": []})
    return path


def record_batch(journal: Path, batch: Path, merged_to: Path, pool_dirs: list[Path]) -> None:
    """Called by intake before a batch's files are copied: enough to undo the merge at any point of it."""
    data = read_json(journal)
    data["batches"].append({"batch": batch.as_posix(), "merged_to": merged_to.as_posix(),
                            "pool_dirs": [p.as_posix() for p in pool_dirs]})
    write_json(journal, data)


def merged_batches(root: Path | str, track: str) -> list[str]:
    data = pending(root, track) or {"batches": []}
    return [Path(b["batch"]).name for b in data["batches"]]


def commit(root: Path | str, track: str) -> None:
    """The retrain's git commit is made: the journal is no longer needed."""
    journal_path(root, track).unlink(missing_ok=True)


def rollback(root: Path | str, track: str) -> list[str]:
    """Undo an unfinished retrain; returns what was done, one line each (empty when nothing was pending)."""
    root = Path(root)
    data = pending(root, track)
    if data is None:
        return []
    done = []
    for entry in reversed(data["batches"]):
        for folder in entry["pool_dirs"]:
            if (root / folder).exists():
                shutil.rmtree(root / folder)
        batch, merged = root / entry["batch"], root / entry["merged_to"]
        if merged.exists() and not batch.exists():
            shutil.move(str(merged), str(batch))
        done.append(f"batch {batch.name}: removed from the pool, back in {batch.parent}")
    for name, text in data["files"].items():
        path = root / name
        if text is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(text)
    names = list(data["files"])
    if names and (root / ".git").exists():
        # Unstage what `dvc add` or the failed run staged; the restored files are back as they were.
        git(root, "reset", "-q", "--", *names)
        done.append(f"restored {', '.join(names)}")
    if not (root / ".dvc").is_dir():
        commit(root, track)
        return done
    if "dvc.lock" in data["files"] and data["files"]["dvc.lock"] is None:
        done.append("there was no dvc.lock before this retrain: the next `dvc repro` rebuilds every output")
    else:  # the pipeline's outputs back to what the restored dvc.lock lists (from the DVC cache)
        # Only the pipeline's outputs (dvc.yaml): data the user tracks with .dvc files is never overwritten.
        proc = subprocess.run([sys.executable, "-m", "dvc", "checkout", "--force", "dvc.yaml"], cwd=root,
                              capture_output=True, text=True)
        lines = [line.strip() for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
        at = max((i for i, line in enumerate(lines) if line.startswith("ERROR")), default=len(lines) - 1)
        why = " ".join(lines[at:at + 4])  # DVC lists the targets it could not check out below its ERROR line
        done.append("dvc checkout: outputs match the restored dvc.lock" if proc.returncode == 0 else
                    f"dvc checkout could not restore every output ({why}): run `dvc repro`")
    commit(root, track)
    return done
