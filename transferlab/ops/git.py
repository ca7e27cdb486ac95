"""The git calls of the registry, lineage and the retrain flow, in one place."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path


def git(root: Path | str, *args: str) -> str:
    """stdout of `git ARGS` in root, stripped; "" when git fails or is not installed (outside a repository,
    an unknown ref): callers treat "no answer" as "not in git"."""
    try:
        proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    except OSError:
        return ""
    return proc.stdout.strip() if proc.returncode == 0 else ""


def has_commits(root: Path | str) -> bool:
    return bool(git(root, "rev-parse", "--verify", "--quiet", "HEAD"))


def identity(root: Path | str) -> list[str]:
    """`-c` options naming a committer when git has none configured."""
    # An unattended run may have no git identity: act as transferlab then, never fail for it.
    if git(root, "config", "user.email") or os.environ.get("GIT_COMMITTER_EMAIL"):
        return []
    return ["-c", "user.name=transferlab registry", "-c", "user.email=registry@transferlab.invalid"]


def run(root: Path | str, *args: str, what: str) -> str:
    """`git ARGS` (with a committer identity) that must succeed; RuntimeError naming `what` otherwise."""
    proc = subprocess.run(["git", *identity(root), *args], cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


def commit_files(root: Path | str, paths: list[str], message: str) -> str | None:
    """Commit exactly `paths` (other staged changes stay staged) and return the new commit; an empty commit
    when they did not change, since GTO allows one version of a model per commit. None outside git."""
    root = Path(root)
    if not has_commits(root):
        return None
    paths = [p for p in paths if (root / p).exists()]
    if paths:
        run(root, "add", "--", *paths, what=f"git add of {paths}")
    # --only: exactly these paths; with --allow-empty and no paths, an empty commit.
    run(root, "commit", "-q", "--only", "--allow-empty", "-m", message, "--", *paths,
        what=f"git commit of {paths}")
    return git(root, "rev-parse", "HEAD")
