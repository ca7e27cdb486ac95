"""Every bad input we handle, in one table: what the user gives, the command, the exit status and the message.

Each row runs the real command line in a fresh project copy. docs/troubleshooting.md explains
the same messages; `pytest tests/integration/test_bad_inputs.py -v` lists them. Exit 2: the input is refused before any
work (nothing written); exit 1: some files could not be used, the others were (predict)."""
import re
import subprocess
import sys

import numpy as np
import pytest
import yaml
from PIL import Image

from ..conftest import make_project, venv_env
from .bad_inputs import (
    _images,
    _model,
    _params,
    batch_is_a_link,
    bomb_in_a_batch,
    card_edited,
    class_linked_to_a_sibling,
    contradicting_keys,
    declared_param_missing,
    decompression_bomb,
    empty_list,
    folder_missing,
    header_rate_lies,
    inbox_outside_the_project,
    lineage_of_nothing,
    linked_batch,
    long_clip,
    markup_in_a_name,
    model_dir_missing,
    nan_clip,
    not_utf8_name_in_a_batch,
    params_not_yaml,
    pickle_as_weights,
    pool_larger_than_a_class,
    silent_clip,
    three_bad_files_in_a_batch,
    tiny_image,
    truncated_audio,
    unknown_key,
    unknown_profile,
    unreadable_image,
    weights_unlike_card,
    wrong_type,
)



# name → (make the bad input, exit status, what the message must say)
CASES = {
    "unknown params key": (unknown_key, 2, r"finetune\.seedz: unknown key; did you mean finetune\.seeds\?"),
    "wrong type": (wrong_type, 2, r"pretrain\.epochs: Input should be a valid integer"),
    "empty list": (empty_list, 2, r"finetune\.strategies: List should have at least 1 item"),
    "two params that contradict": (contradicting_keys, 2, r"evaluate\.focus_per_class \(7\) is not one of "
                                                          r"prepare\.target\.pool_sizes"),
    "a param dvc.yaml declares is missing": (declared_param_missing, 2, r"prepare\.target\.pool_draws \(declared "
                                                                        r"by stage validate\)"),
    "pool larger than a class": (pool_larger_than_a_class, 2, r"prepare\.target\.pool_sizes: the largest pool \(5\) "
                                                              r"plus test_per_class \(2\) needs 7 .* b \(3\)"),
    "data folder missing": (folder_missing, 2, r"prepare\.target\.root: folder nowhere does not exist"),
    "params.yaml not YAML": (params_not_yaml, 2, r"params\.yaml: not valid YAML"),
    "unknown profile": (unknown_profile, 2, r"no profile profiles/nonesuch\.yaml \(available: default, full, smoke"),
    "model directory missing": (model_dir_missing, 2, r"no-such-model"),
    "unreadable image among good ones": (unreadable_image, 1, r"broken\.png"),
    "lineage of a path no stage makes": (lineage_of_nothing, 2, r"README\.md: no stage in dvc\.lock produces it"),
    "model weights are a pickle": (pickle_as_weights, 2, r"m/model\.safetensors: a Python pickle, not safetensors: "
                                                         r"refused, never unpickled"),
    "card.json edited by hand": (card_edited, 2, r"m/card\.json: unknown architecture 'convnet_huge'"),
    "weights do not match the card": (weights_unlike_card, 2, r"m/model\.safetensors: does not match the card"),
    "truncated audio file": (truncated_audio, 1, r"cut\.wav: truncated: header says 16,000 frames, file holds"),
    "silent clip": (silent_clip, 0, r"silent: RMS"),
    "inbox batch links outside itself": (linked_batch, 0, r'"status": "quarantined".*a symbolic link.*outside the '
                                                          r'batch'),
    "image over the decompression-bomb limit": (decompression_bomb, 1, r"bomb\.png.*decompression bomb.*fine\.png"),
    "image too small to classify": (tiny_image, 1, r"dot\.png.*1x1 pixels: smaller than 8"),
    "markup in a file name": (markup_in_a_name, 0, r"\[bold\]y\.png"),
    "clip of NaN samples": (nan_clip, 1, r"nan\.wav: 100 of 16,000 samples are NaN or infinite"),
    "clip longer than the model hears": (long_clip, 0, r"8\.0 s long: only its middle 1 s was classified"),
    "WAV header states the wrong rate": (header_rate_lies, 0, r"spectral centroid \(share of the Nyquist frequency\) "
                                                              r"0\.2\d+ outside the.*header states the wrong sample rate"),
    "decompression bomb in an inbox batch": (bomb_in_a_batch, 0, r'"batch": "week1", "status": "quarantined".*'
                                                                 r'decompression bomb.*"batch": "week2", "status": '
                                                                 r'"merged"'),
    "three bad files in a batch": (three_bad_files_in_a_batch, 0, r"3 file\(s\) cannot be used.*x\.png.*y\.png.*"
                                                                  r"z\.png"),
    "file name not UTF-8 in a batch": (not_utf8_name_in_a_batch, 0, r'"status": "quarantined".*caf\\\\xe9\.png: the '
                                                                    r"file name is not valid UTF-8"),
    "inbox batch is itself a link": (batch_is_a_link, 0, r'"status": "quarantined".*the batch is a symbolic link.*'
                                                         r'"batch": "week2", "status": "merged"'),
    "class folder linked to a sibling": (class_linked_to_a_sibling, 0, r"another part of this batch"),
    "inbox outside the project": (inbox_outside_the_project, 2, r"retrain\.inbox: .*must be a folder inside the "
                                                                r"project"),
}


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return make_project(tmp_path_factory.mktemp("bad") / "template")


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_refused_with_a_message_that_names_it(name, template, tmp_path):
    import shutil

    make, status, message = CASES[name]
    repo = tmp_path / "project"
    shutil.copytree(template, repo, symlinks=True)
    args = make(repo)
    proc = subprocess.run([sys.executable, "-m", "transferlab.cli", *args], cwd=repo, capture_output=True, text=True,
                          env=venv_env(COLUMNS="250"))
    output = proc.stdout + proc.stderr
    assert proc.returncode == status, output
    assert "Traceback" not in output, output
    import re

    assert re.search(message, " ".join(output.split())), output


def test_the_table_is_what_the_troubleshooting_page_explains():
    from ..conftest import ROOT

    page = (ROOT / "docs" / "troubleshooting.md").read_text()
    for name in CASES:
        assert f"| {name} |" in page, name
    assert "docs/troubleshooting.md" in (ROOT / "README.md").read_text()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_cuda_on_a_machine_without_it_is_refused_by_params_check_and_before_the_first_stage(template, tmp_path):
    import shutil

    repo = tmp_path / "project"
    shutil.copytree(template, repo, symlinks=True)
    _params(repo, runtime__device="cuda")
    check = subprocess.run([sys.executable, "-m", "transferlab.cli", "params", "check"], cwd=repo,
                           capture_output=True, text=True, env=venv_env(COLUMNS="250"))
    assert check.returncode == 2 and "runtime.device is 'cuda' but this machine has no usable CUDA device" in \
        " ".join(check.stdout.split()), check.stdout + check.stderr
    stage = subprocess.run([sys.executable, "-m", "dvc", "repro", "--single-item", "data_roots"], cwd=repo,
                           capture_output=True, text=True, env=venv_env())
    assert stage.returncode != 0 and "error: runtime.device is 'cuda'" in stage.stdout + stage.stderr
    assert not (repo / "data").exists()  # nothing written


def test_an_unwritable_output_folder_stops_the_stage_before_any_work(template, tmp_path):
    import shutil

    repo = tmp_path / "project"
    shutil.copytree(template, repo, symlinks=True)
    (repo / "data").mkdir()
    # Immutable: even root cannot create a file there (as on a read-only mount; permission bits do not stop root).
    if subprocess.run(["chattr", "+i", str(repo / "data")], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here")
    try:
        proc = subprocess.run([sys.executable, "-m", "dvc", "repro", "--single-item", "data_roots"], cwd=repo,
                              capture_output=True, text=True, env=venv_env())
    finally:
        subprocess.run(["chattr", "-i", str(repo / "data")])
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "error: cannot write data/ (Operation not permitted)" in output, output
    assert "Traceback" not in output and list((repo / "data").iterdir()) == []
    # A later stage's folder: the first stage (always run) already refuses, before DVC deletes anything.
    (repo / "models").mkdir()
    subprocess.run(["chattr", "+i", str(repo / "models")], check=True)
    try:
        proc = subprocess.run([sys.executable, "-m", "dvc", "repro", "--single-item", "data_roots"], cwd=repo,
                              capture_output=True, text=True, env=venv_env())
    finally:
        subprocess.run(["chattr", "-i", str(repo / "models")])
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "cannot write models/ (Operation not permitted)" in output, output
    assert not (repo / "data" / "roots.json").exists()


def test_models_are_readable_by_other_users_and_workers(tmp_path):
    import os
    import stat

    _model(tmp_path)
    umask = os.umask(0)
    os.umask(umask)
    for name in ("model.safetensors", "card.json"):
        assert stat.S_IMODE((tmp_path / "m" / name).stat().st_mode) == 0o666 & ~umask, name


def test_16_bit_and_rotated_images_read_as_a_viewer_shows_them(tmp_path):
    from transferlab.data.sources import read_image

    eight = np.zeros((28, 28), np.uint8)
    eight[4:20, 10:14] = 200
    Image.fromarray(eight).save(tmp_path / "eight.png")
    Image.fromarray(eight.astype(np.uint16) * 257).save(tmp_path / "sixteen.png")
    assert Image.open(tmp_path / "sixteen.png").mode.startswith("I")
    np.testing.assert_allclose(read_image(tmp_path / "sixteen.png", 28, 1), read_image(tmp_path / "eight.png", 28, 1))
    # Stored sideways with EXIF orientation 6 ("rotate 90° clockwise to view"): read upright.
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.rot90(eight, 1).copy()).save(tmp_path / "sideways.jpg", exif=exif.tobytes(), quality=100)
    upright = read_image(tmp_path / "sideways.jpg", 28, 1)
    assert np.abs(upright - read_image(tmp_path / "eight.png", 28, 1)).mean() < 3


def test_a_file_name_that_is_not_utf8_is_hashed_then_named_by_prepare(tmp_path):
    import os

    from transferlab.data.sources import DataError, load_image_folder
    from transferlab.system.io import dir_md5

    _images(tmp_path / "pool", {"a": 2})
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(os.fsencode(tmp_path / "pool" / "a") + b"/caf\xe9.png")
    assert re.fullmatch(r"[0-9a-f]{32}\.dir", dir_md5(tmp_path / "pool"))  # data_roots hashes the folder as it is
    with pytest.raises(DataError, match=r"caf\\xe9\.png: the file name is not valid UTF-8"):
        load_image_folder(tmp_path / "pool", 28, 1)


@pytest.mark.parametrize("profile", ["params.yaml", "profiles/full.yaml", "profiles/smoke.yaml"])
def test_every_profile_states_every_runtime_key_so_dvc_can_set_it(profile):
    from transferlab.params import RuntimeParams

    from ..conftest import ROOT

    from transferlab.params.profiles import render

    # params.yaml states every key itself; a profile is written out whole by `params use` (render)
    text = (ROOT / profile).read_text() if profile == "params.yaml" else render(ROOT / profile)
    stated = yaml.safe_load(text)["runtime"]
    assert set(stated) == set(RuntimeParams.model_fields), profile
