"""Resume: a run killed at any step and resumed ends bit for bit where an uninterrupted run ends; a killed
stage's scratch output is cleaned up by the next run; a bad checkpoint is never unpickled but moved aside, and
training starts over."""
from __future__ import annotations

import hashlib
import os
import pickle
import random
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from transferlab.params.profiles import whole_data
from transferlab.core.engine import TrainConfig, train
from transferlab.system.io import atomic_dir
from transferlab.models import create_model

from ..conftest import ROOT, venv_env

ROWS, BATCH = 103, 16  # 103 rows is not a multiple of 16: every epoch drops a partial batch


@pytest.fixture(autouse=True)
def torch_globals():
    """One thread (tiny models on a shared machine run much faster so); the stage's runtime set-up (threads,
    deterministic algorithms) is undone for the tests that follow."""
    threads, det, warn = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
                          torch.is_deterministic_algorithms_warn_only_enabled())
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(det, warn_only=warn)


def _data(n: int = ROWS):
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=g), torch.arange(n) % 10


def _fresh(widths=(4, 8, 16)):
    torch.manual_seed(0)
    model = create_model("convnet", 10, widths=list(widths), dropout=0.3)
    return model, [{"name": "all", "params": list(model.parameters()), "lr": 1e-2}]


class Killed(Exception):
    pass


def _new_process_globals(seed: int) -> None:
    """A resumed run lives in a new process: other global RNG states (the checkpoint must restore them)."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def _run(cfg: TrainConfig, checkpoint: Path | None = None, kill_at: int | None = None, seed: int = 5,
         sampler=None, widths=(4, 8, 16)) -> dict:
    images, labels = _data()
    model, groups = _fresh(widths)

    def on_step(log):
        if log.step == kill_at:  # after the step, before its checkpoint (if any) is written
            raise Killed

    train(model, images, labels, groups, cfg, torch.Generator().manual_seed(seed), checkpoint=checkpoint,
          on_step=on_step, every=1, sampler=sampler)
    return model.state_dict()


def _assert_same(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs"


@pytest.mark.parametrize("augment", [False, True], ids=["plain", "augment"])
def test_training_killed_at_any_step_resumes_bit_for_bit(tmp_path, augment):
    # 6 batches an epoch, a checkpoint every 4 steps: most checkpoints fall inside an epoch.
    cfg = TrainConfig(steps=30, batch_size=BATCH, steps_per_checkpoint=4, augment=augment)
    reference = _run(cfg)
    for kills in [(3,), (6,), (17,), (22, 27), (29,)]:
        checkpoint = tmp_path / f"kill-{'-'.join(map(str, kills))}.ckpt"
        for kill_at in kills:
            with pytest.raises(Killed):
                _run(cfg, checkpoint, kill_at, seed=_seed(checkpoint))
            _new_process_globals(123 + kill_at)
        _assert_same(reference, _run(cfg, checkpoint, seed=_seed(checkpoint)))


def _seed(checkpoint: Path) -> int:
    """The run's seed, or another one when resuming: the generator's state must come from the checkpoint."""
    return 99 if checkpoint.exists() else 5


def test_resume_restores_numpy_and_python_random_state(tmp_path):
    """A sampler that draws from numpy's and Python's global generators resumes exactly too."""
    images, labels = _data()

    def global_rng_sampler(step, generator):
        idx = torch.from_numpy(np.random.choice(ROWS, BATCH, replace=False))
        idx = idx[torch.tensor(random.sample(range(BATCH), BATCH))]
        return idx, labels[idx]

    cfg = TrainConfig(steps=14, batch_size=BATCH, steps_per_checkpoint=5)
    _new_process_globals(0)
    reference = _run(cfg, sampler=global_rng_sampler)
    checkpoint = tmp_path / "ckpt"
    _new_process_globals(0)
    with pytest.raises(Killed):
        _run(cfg, checkpoint, kill_at=8, sampler=global_rng_sampler)
    _new_process_globals(7)
    _assert_same(reference, _run(cfg, checkpoint, sampler=global_rng_sampler))


class _Payload:
    """Unpickling this creates `marker`: proof that pickle code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def _tamper(checkpoint: Path, kind: str, marker: Path, other_shapes: Path | None = None) -> bytes:
    if kind == "pickle":
        checkpoint.write_bytes(pickle.dumps({"model": _Payload(marker), "step": 3}))
    elif kind == "torch-pickle":
        torch.save({"model": _Payload(marker), "step": 3}, checkpoint)
    elif kind == "random":
        checkpoint.write_bytes(random.Random(0).randbytes(6000))
    elif kind == "truncated":
        checkpoint.write_bytes(checkpoint.read_bytes()[:-100])
    elif kind == "late":  # readable, and only its last part is wrong: all loaded before it must be undone
        from transferlab.core.engine import load_checkpoint, save_checkpoint

        state = load_checkpoint(checkpoint)
        state["rng"]["torch"] = state["rng"]["torch"][:100]
        save_checkpoint(checkpoint, state)
    else:
        checkpoint.write_bytes(other_shapes.read_bytes())
    return checkpoint.read_bytes()


def _moved_aside(checkpoint: Path) -> Path:
    [aside] = checkpoint.parent.glob(f"{checkpoint.name}.unreadable-*")
    return aside


@pytest.mark.parametrize("kind", ["pickle", "torch-pickle", "random", "truncated", "shapes", "late"])
def test_bad_checkpoint_is_moved_aside_and_training_starts_over(tmp_path, capsys, kind):
    cfg = TrainConfig(steps=12, batch_size=BATCH, steps_per_checkpoint=5, augment=True)
    reference = _run(cfg)
    checkpoint, other = tmp_path / "ckpt", tmp_path / "other"
    _run(cfg, other, widths=(4, 8, 12))  # the same settings, another network: tensors of other shapes
    with pytest.raises(Killed):
        _run(cfg, checkpoint, kill_at=7)
    marker = tmp_path / "pickle-code-ran"
    bad = _tamper(checkpoint, kind, marker, other)
    capsys.readouterr()
    _new_process_globals(42)
    resumed = _run(cfg, checkpoint)  # equal to `reference` only if the failed resume left nothing behind
    assert not marker.exists()
    aside = _moved_aside(checkpoint)
    assert aside.read_bytes() == bad
    err = [line for line in capsys.readouterr().err.splitlines() if "unreadable" in line]
    assert len(err) == 1 and str(checkpoint) in err[0] and str(aside) in err[0] and "scratch" in err[0], err
    _assert_same(reference, resumed)
    assert checkpoint.read_bytes()[8:9] == b"{"  # the new run's own: safetensors (a JSON header), no pickle
    _assert_same(reference, _run(cfg, checkpoint))
    assert len(list(tmp_path.glob("ckpt.unreadable-*"))) == 1


def test_checkpoint_of_other_settings_is_not_resumed(tmp_path, capsys):
    checkpoint = tmp_path / "ckpt"
    _run(TrainConfig(steps=10, batch_size=BATCH, steps_per_checkpoint=5), checkpoint)
    cfg = TrainConfig(steps=12, batch_size=BATCH, steps_per_checkpoint=5)
    _assert_same(_run(cfg), _run(cfg, checkpoint))
    assert _moved_aside(checkpoint).exists()
    assert "other training settings: steps 10 (here 12)" in capsys.readouterr().err


# --- atomic_dir: a killed stage's scratch directory is removed by the next run of the same output ---

def test_atomic_dir_removes_only_its_own_leftover_scratch_dirs(tmp_path, capsys):
    out = tmp_path / "full"
    leftovers = [tmp_path / ".full.k3j_9x2a", tmp_path / ".full.abcdefgh"]
    for d in leftovers:
        (d / "sub").mkdir(parents=True)
        (d / "sub" / "weights").write_text("partial")
    keep_dirs = [".small.abcdefgh", ".full.abc", ".full.abcdefghi", ".full.v2.abcdefgh", "full.abcdefgh",
                 ".full.ABCDEFGH", ".fullx.abcdefgh", "..full.abcdefgh"]
    for name in keep_dirs:
        (tmp_path / name).mkdir()
    (tmp_path / ".full.zzzzzzzz").write_text("a file, not a scratch dir")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious").write_text("x")
    (tmp_path / ".full.linkxxxx").symlink_to(elsewhere, target_is_directory=True)
    with atomic_dir(out) as scratch:
        (scratch / "model").write_text("new")
        # The same output opened again meanwhile (a concurrent run) must not remove the first one's scratch dir.
        with atomic_dir(tmp_path / "full") as inner:
            assert scratch.exists()
            (inner / "model").write_text("inner")
        assert scratch.exists()
    err = capsys.readouterr().err
    for d in leftovers:
        assert not d.exists()
        assert str(d) in err
    assert err.count("leftover") == 2, err
    for name in keep_dirs + [".full.zzzzzzzz", ".full.linkxxxx"]:
        assert (tmp_path / name).exists() or (tmp_path / name).is_symlink(), name
    assert (elsewhere / "precious").exists()
    assert (out / "model").read_text() == "new"
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {*keep_dirs, ".full.zzzzzzzz", ".full.linkxxxx", "elsewhere", "full"}  # no scratch dir of ours


# --- the pretrain stage, end to end ---

# Runs the stage, SIGKILL-ing itself right after step KILL_AT was logged (at an epoch's end: after its metrics
# went to dvclive) and before that step's checkpoint could be written, as `kill -9` might.
KILLER = """
import os, signal, sys
from transferlab.experiments.pretraining import source as pretrain
kill_at, real_train = int(sys.argv[1]), pretrain.train

def train(*args, on_step=None, **kwargs):
    def step(log):
        on_step(log)
        if log.step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
    return real_train(*args, on_step=step, **kwargs)

pretrain.train = train
from stages.pretrain import main
main(sys.argv[2:])
"""


def _project(root: Path, epochs: int = 5, widths=(4, 8, 16)) -> Path:
    """120 random 28x28 images of 10 classes (108 train rows: 6 batches of 16 and 12 rows left over)."""
    from transferlab.data.prepared import holdout_split, save_prepared
    from transferlab.data.sources import ImageSet

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (120, 1, 28, 28), dtype=np.uint8)
    data = ImageSet(images, np.arange(120) % 10, [str(c) for c in range(10)], [f"i{i}" for i in range(120)])
    save_prepared(root / "source", data, holdout_split(120, 0.1, 0))
    (root / "validation.json").write_text('{"success": true}')
    params = whole_data(ROOT / "profiles" / "smoke.yaml")
    params["runtime"] = {"device": "cpu", "threads": 1}
    params["pretrain"].update(seed=3, epochs=epochs, batch_size=BATCH, augment=True, lr=0.01,
                              model={"name": "convnet_small", "widths": list(widths), "dropout": 0.3})
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


def _args(root: Path, run: str, out: str | None = None) -> list[str]:
    return ["--params", str(root / "params.yaml"), "--variant", "src-full", "--source", str(root / "source"),
            "--validation", str(root / "validation.json"), "--out", str(root / "models" / (out or run)),
            "--checkpoints", str(root / "checkpoints" / run), "--live", str(root / "live" / run),
            "--metrics", str(root / "metrics" / f"{run}.json")]


def _stage(root: Path, run: str, kill_at: int = 0) -> subprocess.CompletedProcess:
    env = venv_env(PYTHONPATH=str(ROOT), TRANSFERLAB_OPENLINEAGE="off")
    return subprocess.run([sys.executable, "-c", KILLER, str(kill_at), *_args(root, run)], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _scratch(root: Path, run: str) -> list[Path]:
    return sorted((root / "models").glob(f".{run}.*"))


def _curves(live: Path) -> dict[str, str]:
    return {p.relative_to(live).as_posix(): p.read_text() for p in sorted((live / "plots").rglob("*.tsv"))}


def test_pretrain_stage_killed_with_sigkill_resumes_to_the_same_model_file(tmp_path, monkeypatch):
    from stages.pretrain import main

    root = _project(tmp_path)
    monkeypatch.chdir(root)
    main(_args(root, "ref"))  # uninterrupted (in this process: one process start less)
    # 6 batches an epoch: killed right after epoch 4's metrics went to dvclive, before its checkpoint.
    killed = _stage(root, "run", kill_at=24)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert len(_scratch(root, "run")) == 1  # what kill -9 leaves behind
    done = _stage(root, "run")
    assert done.returncode == 0, done.stderr
    assert "leftover" in done.stderr and "resuming" in done.stderr, done.stderr
    assert _scratch(root, "run") == []
    assert _md5(root / "models" / "run" / "model.safetensors") == _md5(root / "models" / "ref" / "model.safetensors")
    assert _curves(root / "live" / "run") == _curves(root / "live" / "ref")  # one row per epoch, same values
    metrics = {run: yaml.safe_load((root / "metrics" / f"{run}.json").read_text()) for run in ("ref", "run")}
    assert metrics["run"].pop("resumed") and not metrics["ref"].pop("resumed")
    assert metrics["run"] == metrics["ref"]


@pytest.mark.parametrize("kind", ["pickle", "random", "shapes"])
def test_pretrain_stage_moves_a_tampered_checkpoint_aside_and_completes(tmp_path, capsys, monkeypatch, kind):
    from stages.pretrain import main

    root = _project(tmp_path, epochs=2)
    monkeypatch.chdir(root)
    main(_args(root, "ref"))  # completes: its last checkpoint stays as the resume point
    [checkpoint] = (root / "checkpoints" / "ref").iterdir()
    other = None
    if kind == "shapes":
        _project(tmp_path / "other", epochs=2, widths=(4, 8, 12))
        main(_args(tmp_path / "other", "ref"))
        [other] = (tmp_path / "other" / "checkpoints" / "ref").iterdir()
    marker = tmp_path / "pickle-code-ran"
    bad = _tamper(checkpoint, kind, marker, other)
    capsys.readouterr()
    main(_args(root, "ref", out="again"))  # returns: the stage exits 0
    assert not marker.exists()
    aside = _moved_aside(checkpoint)
    assert aside.read_bytes() == bad
    err = [line for line in capsys.readouterr().err.splitlines() if "unreadable" in line]
    assert len(err) == 1 and str(checkpoint) in err[0] and str(aside) in err[0], err
    # Trained from scratch: the same file as the first, uninterrupted run.
    assert _md5(root / "models" / "again" / "model.safetensors") == _md5(root / "models" / "ref" / "model.safetensors")
    assert yaml.safe_load((root / "metrics" / "ref.json").read_text())["resumed"] is False
