"""The model registry without DVC: versions, promotions, GTO-style git tags, never a duplicate."""
import pytest


def test_registry_versions_and_promotions_are_gto_style_git_tags(tmp_path):
    import subprocess

    from transferlab.ops import registry

    def git(*args):
        return subprocess.run(["git", *args], cwd=tmp_path, capture_output=True, text=True, check=True).stdout

    git("init", "-q", "-b", "main")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "first")
    model = tmp_path / "m"
    model.mkdir()
    (model / "card.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"x")
    v1 = registry.register(tmp_path, "digits", model, {"test_accuracy": 0.9}, "0" * 32)
    registry.promote(tmp_path, "digits", 1)
    # The same weights again are not a new version (a retrain that changed nothing, promote run twice).
    with pytest.raises(ValueError, match="identical to digits v1"):
        registry.register(tmp_path, "digits", model, {"test_accuracy": 0.9}, "0" * 32)
    assert len(registry.versions(tmp_path, "digits")) == 1
    (model / "model.safetensors").write_bytes(b"y")
    v2 = registry.register(tmp_path, "digits", model, {"test_accuracy": 0.95}, "1" * 32)
    registry.promote(tmp_path, "digits", 2)
    assert (v1["git_tag"], v2["git_tag"]) == ("digits@v1.0.0", "digits@v2.0.0")
    tags = git("tag", "--list", "digits*").split()
    assert sorted(tags) == ["digits#champion#1", "digits#champion#2", "digits@v1.0.0", "digits@v2.0.0"]
    assert '"test_accuracy": 0.95' in git("tag", "-n9", "--list", "digits@v2.0.0")
    # The champion tags point at the commits their versions were registered at.
    assert git("rev-parse", "digits#champion#2^{commit}") == git("rev-parse", "digits@v2.0.0^{commit}")
    assert [v["stage"] for v in registry.versions(tmp_path, "digits")] == ["archived", "champion"]
    # An index that lost a version its tag still names is refused before anything is copied.
    (tmp_path / registry.REGISTRY_FILE).unlink()
    (model / "model.safetensors").write_bytes(b"z")
    with pytest.raises(ValueError, match="digits@v1.0.0 exists"):
        registry.register(tmp_path, "digits", model, {}, "2" * 32)


def test_registry_outside_git_keeps_working_without_tags(tmp_path):
    from transferlab.ops import registry

    model = tmp_path / "m"
    model.mkdir()
    (model / "card.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"x")
    entry = registry.register(tmp_path, "x", model, {}, "0" * 32)
    assert entry["git_tag"] is None and registry.promote(tmp_path, "x", 1)["stage"] == "champion"


def test_a_relative_model_dir_is_the_projects_and_is_recorded_as_dvc_lock_names_it(tmp_path, monkeypatch):
    from pathlib import Path

    from transferlab.ops import registry

    model = tmp_path / "models" / "m"
    model.mkdir(parents=True)
    (model / "card.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"x")
    monkeypatch.chdir(tmp_path.parent)  # the caller's working directory is not the project
    entry = registry.register(tmp_path, "x", Path("models/m"), {}, "0" * 32)
    assert entry["source"] == "models/m" and (tmp_path / entry["path"] / "model.safetensors").exists()
    assert registry.identical_version(tmp_path, "x", Path("models/m"))["version"] == 1
