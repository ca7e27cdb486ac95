"""The one git helper: answers "" instead of failing, and commits exactly the paths it is given."""
import subprocess

from transferlab.ops.git import commit_files, git


def test_commit_files_commits_only_its_paths_and_is_none_outside_git(tmp_path):
    assert git(tmp_path, "rev-parse", "HEAD") == "" and commit_files(tmp_path, ["a"], "m") is None
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=tmp_path, check=True)
    for name in "ab":
        (tmp_path / name).write_text(name)
    subprocess.run(["git", "add", "b"], cwd=tmp_path, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "b"], cwd=tmp_path,
                   check=True)
    (tmp_path / "b").write_text("staged, not committed")
    subprocess.run(["git", "add", "b"], cwd=tmp_path, check=True)
    head = commit_files(tmp_path, ["a", "missing"], "add a")
    assert head == git(tmp_path, "rev-parse", "HEAD") and git(tmp_path, "show", "--format=", "--name-only") == "a"
    assert git(tmp_path, "diff", "--cached", "--name-only") == "b"
    # No change: an empty commit all the same (GTO: one model version per commit).
    assert commit_files(tmp_path, ["a"], "again") != head
