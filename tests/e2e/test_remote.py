"""A shared DVC remote (issue 18): push after a run, pull into a fresh clone, and `dvc repro` there trains
nothing. The remote is a temporary directory, as a local or NFS path remote would be (docs/remote.md)."""
from __future__ import annotations

import json
import re
import shutil

import yaml

from ..conftest import dvc, sh


def _copy_of(repo, dest):
    """A private copy of the shared smoke project (git history, workspace and DVC cache; DVC's tmp state stays
    behind), with the run committed: dvc.lock and the outputs git keeps (metrics, plots, dvclive)."""
    shutil.copytree(repo, dest, symlinks=True,
                    ignore=lambda folder, names: ["tmp"] if folder.endswith("/.dvc") else [])
    sh(["git", "add", "-A"], dest)
    sh(["git", "commit", "-qm", "a smoke run"], dest)
    return dest


def _status(repo, *args: str) -> dict:
    """`dvc status --json` (stages by name, as the CLI addresses them from the repo root)."""
    return json.loads(dvc("status", *args, "--json", cwd=repo).stdout or "{}")


def _ran(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


def test_push_then_pull_into_a_fresh_clone_reproduces_with_nothing_rerun(smoke_project, tmp_path):
    project = _copy_of(smoke_project, tmp_path / "project")
    remote = tmp_path / "nfs" / "transferlab-cache"
    dvc("remote", "add", "-d", "shared", str(remote), cwd=project)
    sh(["git", "commit", "-qm", "DVC remote: a shared directory", "--", ".dvc/config"], project)
    assert _status(project) == {"data_roots": ["always changed"]}  # the run is complete and committed
    dvc("push", cwd=project)
    assert any(remote.rglob("*")), "dvc push wrote nothing to the remote"
    assert _status(project, "--cloud") == {}  # everything the workspace's dvc.lock names is in the remote

    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(project), str(clone)], tmp_path)
    assert not (clone / ".dvc" / "cache").exists()  # a fresh clone: no cache, no outputs
    # Without the remote's data the clone is far from up to date: the check below could fail.
    before = _status(clone)
    assert {"prepare", "pretrain@src-full", "finetune", "evaluate", "report"} <= set(before)
    assert "not in cache" in str(before["finetune"])

    dvc("pull", cwd=clone)
    # Up to date: only data_roots, which rehashes the user's folders on every repro by design (always_changed).
    assert _status(clone) == {"data_roots": ["always changed"]}
    lock = (clone / "dvc.lock").read_text()
    out = dvc("repro", cwd=clone).stdout
    assert _ran(out) == ["data_roots"], out
    # Every other stage was checked and skipped: pretraining, fine-tuning, the report...
    skipped = re.findall(r"Stage '([^']+)' didn't change, skipping", out)
    stages = set(yaml.safe_load(lock)["stages"])
    assert len(stages) > 20 and set(skipped) == stages - {"data_roots"}, out
    # data_roots found the same folders (none: embedded data), so its outputs and dvc.lock did not change.
    assert (clone / "dvc.lock").read_text() == lock
    assert sh(["git", "status", "--porcelain"], clone).stdout == ""
    assert _status(clone) == {"data_roots": ["always changed"]}
