"""The retrain flow's push (flows.retrain.push_outputs) on a tiny DVC project: nothing without a default remote,
everything DVC tracks with one, and a failed push named with its remote. The flow itself pushing is in
test_flows_retrain (one real retrain with a remote, one without)."""
import pytest

from flows.retrain import RetrainFailed, push_outputs

from ..conftest import dvc, sh


@pytest.fixture
def project(tmp_path):
    repo = tmp_path / "project"
    repo.mkdir()
    sh(["git", "init", "-q", "-b", "main"], repo)
    dvc("init", "-q", cwd=repo)
    (repo / "data").mkdir()
    (repo / "data" / "a.txt").write_text("a\n")
    (repo / "data" / "b.txt").write_text("b\n")
    dvc("add", "-q", "data", cwd=repo)
    return repo


def test_no_default_remote_pushes_nothing(project):
    assert push_outputs(project) == {"remote": None, "url": None, "pushed": 0}


def test_a_default_remote_gets_what_dvc_tracks_and_a_second_push_has_nothing_new(project, tmp_path):
    remote = tmp_path / "nfs" / "cache"
    dvc("remote", "add", "--local", "-d", "shared", str(remote), cwd=project)
    assert push_outputs(project) == {"remote": "shared", "url": str(remote), "pushed": 3}  # 2 files + the dir
    assert len([p for p in remote.rglob("*") if p.is_file()]) == 3
    assert push_outputs(project)["pushed"] == 0
    # What the remote holds is what a clone pulls.
    clone = tmp_path / "clone"
    sh(["git", "add", "-A"], project)
    sh(["git", "commit", "-qm", "data"], project)
    sh(["git", "clone", "-q", str(project), str(clone)], tmp_path)
    dvc("remote", "add", "--local", "-d", "shared", str(remote), cwd=clone)
    dvc("pull", cwd=clone)
    assert (clone / "data" / "b.txt").read_text() == "b\n"


def test_a_failed_push_names_the_remote_and_why(project, tmp_path):
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the remote's directory should be")
    dvc("remote", "add", "--local", "-d", "shared", str(blocked), cwd=project)
    with pytest.raises(RetrainFailed) as err:
        push_outputs(project)
    message = str(err.value)
    assert message.startswith(f"dvc push to DVC remote 'shared' ({blocked}) failed:"), message
    assert "Not a directory" in message and len(message.splitlines()) == 1
