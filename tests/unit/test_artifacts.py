"""A model card's code_version names the code that made it: '+dirty' only when the code differs."""
import subprocess

from transferlab.models.artifacts import code_version


def test_code_version_is_dirty_only_when_the_code_changed(tmp_path, monkeypatch):
    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    (tmp_path / "transferlab").mkdir()
    (tmp_path / "transferlab" / "x.py").write_text("a = 1\n")
    (tmp_path / "dvc.lock").write_text("stages: {}\n")
    (tmp_path / "params.yaml").write_text("a: 1\n")
    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "code")
    monkeypatch.chdir(tmp_path)
    clean = code_version()
    assert len(clean) == 40
    # What every run rewrites (dvc.lock) or `dvc exp run -S` changes (params) is not the code.
    (tmp_path / "dvc.lock").write_text("stages: {prepare: {}}\n")
    (tmp_path / "params.yaml").write_text("a: 2\n")
    assert code_version() == clean
    (tmp_path / "transferlab" / "x.py").write_text("a = 2\n")
    assert code_version() == clean + "+dirty"
