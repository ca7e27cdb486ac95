"""Imported backbones (transferlab.models.pretrained, stages.import_backbones): real torchvision architectures with random
weights placed where torchvision looks for its files, never downloaded."""
from __future__ import annotations

import json
import urllib.error
from pathlib import Path

import numpy as np
import re

import pytest
import torch
import torchvision

from stages import import_backbones as stage
from transferlab.models.artifacts import load_model, make_card, save_model
from transferlab.core.engine import to_input
from transferlab.system.io import file_md5
from transferlab.models import body_groups, create_model, freeze_modules, owning_modules
from transferlab.params import ImportedBackboneParams
from transferlab.models.pretrained import BackboneImportError, files, hub_checkpoint, import_backbone
from transferlab.models.pretrained.torchvision import torchvision_weights


@pytest.fixture
def torch_home(tmp_path, monkeypatch) -> Path:
    """An empty TORCH_HOME, and no network: a download attempt fails at once, as on an offline machine."""
    home = tmp_path / "torch-home"
    monkeypatch.setenv("TORCH_HOME", str(home))

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("offline (test)")
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    # place() saves random weights under torchvision's file names, whose hash they cannot match: the name check is
    # off here, and tested on its own (test_a_hub_file_whose_sha256_does_not_match_its_name_is_refused).
    monkeypatch.setattr(files, "HUB_NAME_HASH", re.compile(r"(?!)"))
    return home


def place(arch: str, weights: str = "IMAGENET1K_V1") -> tuple[Path, dict]:
    """A random-init state dict of `arch` saved under the file name torchvision expects for `weights`."""
    state = torchvision.models.get_model(arch).state_dict()
    path = hub_checkpoint(torchvision_weights(arch, weights).url)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path, state


def write_params(tmp_path: Path, *entries: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text("backbones:\n" + "".join(f"  - {e}\n" for e in entries))
    return path


def grey_digits(n: int = 4) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(0).integers(0, 256, (n, 28, 28), dtype=np.uint8))


def test_stage_imports_torchvision_weights_from_torch_home_as_a_pretrained_model_dir(tmp_path, torch_home):
    path, state = place("resnet18")
    params = write_params(tmp_path, "{name: rn18, kind: torchvision, arch: resnet18, weights: IMAGENET1K_V1}")
    imported = tmp_path / "models" / "imported"
    stage.main(["--params", str(params), "--weights", str(tmp_path / "weights.json"), "--out", str(imported)])
    out = imported / "rn18"
    assert sorted(p.name for p in out.iterdir()) == ["card.json", "model.safetensors"]
    manifest = json.loads((imported / "manifest.json").read_text())
    assert manifest == {"rn18": {"track": "vision", "kind": "torchvision", "dir": out.as_posix(),
                                 "weights": path.as_posix(), "md5": file_md5(path)}}
    model, card = load_model(out)
    assert card["architecture"]["name"] == "tv:resnet18" and len(card["classes"]) == 1000
    net = card["preprocessing"]["network_input"]
    assert (net["image_size"], net["channels"], net["resize_size"]) == (224, 3, 256)
    assert net["mean"] == [0.485, 0.456, 0.406] and net["std"] == [0.229, 0.224, 0.225]
    assert (card["preprocessing"]["image_size"], card["preprocessing"]["channels"]) == (28, 1)  # stored samples
    assert net["channel_repeat"] is True
    assert card["parents"] == [{"role": "pretrained-weights", "path": path.as_posix(), "md5": file_md5(path)}]
    assert card["imported"]["url"].endswith(path.name) and card["imported"]["weights"] == "IMAGENET1K_V1"
    assert torch.equal(model.net.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])
    assert torch.equal(model.head.weight, state["fc.weight"])
    with torch.no_grad():
        assert model(to_input(grey_digits())).shape == (4, 1000)


def test_adapter_resizes_crops_and_normalises_as_torchvision_transforms():
    weights = torchvision_weights("resnet18", "IMAGENET1K_V1")
    model = create_model("tv:resnet18", 10, in_chans=3, resize_size=256, crop_size=224,
                         mean=list(weights.transforms().mean), std=list(weights.transforms().std))
    images = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (2, 3, 40, 60), dtype=np.uint8))
    expected = weights.transforms()(images)
    assert torch.allclose(model.adapter(to_input(images)), expected, atol=2e-2)


def test_fine_tuning_style_use_on_grey_digits_and_reload(tmp_path, torch_home):
    """mobilenet_v3_small: head reset, last stage trainable (the model's own grouping), one step, saved and
    reloaded frozen as finetune does."""
    place("mobilenet_v3_small")
    entry = ImportedBackboneParams(name="m", kind="torchvision", arch="mobilenet_v3_small", weights="IMAGENET1K_V1")
    model, card = import_backbone(entry, image_size=28, channels=1)
    save_model(tmp_path / "backbone", model, card)
    model, card = load_model(tmp_path / "backbone")
    groups = body_groups(model)
    assert len(groups) == len(model.net.features) + 1  # features.0..12, then the pre-logits Linear
    assert groups[0][0].startswith("net.features.0.") and groups[-1][0].startswith("net.classifier.0.")
    model.reset_classifier(10)
    frozen = owning_modules([n for g in groups[:-2] for n in g])
    freeze_modules(model, frozen)
    model.train()
    x, y = to_input(grey_digits(4)), torch.tensor([0, 1, 2, 3])
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(trainable, lr=0.01)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    assert model.net.features[0][0].weight.grad is None and model.head.weight.grad is not None
    save_model(tmp_path / "tuned", model, make_card(
        architecture=card["architecture"], classes=[str(i) for i in range(10)],
        preprocessing=card["preprocessing"], frozen_modules=frozen))
    tuned, _ = load_model(tmp_path / "tuned")
    with torch.no_grad():
        assert torch.allclose(tuned(x), model.eval()(x), atol=1e-5)
        assert tuned(x).shape == (4, 10)


def test_no_network_and_no_cached_file_names_the_expected_path_and_writes_nothing(tmp_path, torch_home, capsys):
    params = write_params(tmp_path, "{name: rn18, kind: torchvision, arch: resnet18, weights: IMAGENET1K_V1}")
    out = tmp_path / "models" / "imported"
    with pytest.raises(SystemExit) as exit_:
        stage.main(["--params", str(params), "--weights", str(tmp_path / "weights.json"), "--out", str(out)])
    assert exit_.value.code == 2
    expected = torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    err = capsys.readouterr().err
    assert f"place it at {expected}" in err and "resnet18-f37072fd.pth" in err
    assert not out.exists() and not (out.parent.exists() and any(out.parent.iterdir()))


def test_unknown_weights_name_lists_the_known_ones(torch_home):
    with pytest.raises(BackboneImportError, match="IMAGENET1K_V1"):
        torchvision_weights("resnet18", "IMAGENET9K")


def test_file_for_another_architecture_names_the_mismatching_key(tmp_path, torch_home):
    path = tmp_path / "rn18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    entry = ImportedBackboneParams(name="x", kind="file", arch="resnet34", path=str(path))
    with pytest.raises(BackboneImportError, match=r"rn18\.pth: does not fit torchvision resnet34: .*missing: "
                                                  r"layer1\.2\.conv1\.weight"):
        import_backbone(entry, image_size=28, channels=1)
    state = torchvision.models.resnet18().state_dict()
    state["layer4.1.conv2.weight"] = torch.zeros(8, 8, 3, 3)
    torch.save(state, path)
    with pytest.raises(BackboneImportError, match=r"layer4\.1\.conv2\.weight is \[8, 8, 3, 3\] not \[512, 512"):
        import_backbone(ImportedBackboneParams(name="x", kind="file", arch="resnet18", path=str(path)), image_size=28, channels=1)


def test_file_as_safetensors_with_its_own_head_size(tmp_path, torch_home):
    from safetensors.torch import save_file

    state = torchvision.models.resnet18(num_classes=7).state_dict()
    path = tmp_path / "rn18-7.safetensors"
    save_file(state, str(path))
    model, card = import_backbone(ImportedBackboneParams(name="x", kind="file", arch="resnet18", path=str(path)),
                                  image_size=28, channels=1)
    assert card["classes"] == [f"class_{i}" for i in range(7)] and card["parents"][0]["md5"] == file_md5(path)
    assert card["imported"]["preprocessing_of"] == "resnet18 IMAGENET1K_V1"
    assert torch.equal(model.head.weight, state["fc.weight"])


class _RunsCode:
    """Unpickling this would create a file: what any code in a pickle could do instead."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pth_is_loaded_with_weights_only_so_a_pickle_with_code_is_refused(tmp_path, torch_home):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "payload": _RunsCode(marker)}, path)
    entry = ImportedBackboneParams(name="x", kind="file", arch="resnet18", path=str(path))
    with pytest.raises(BackboneImportError, match=r"evil\.pth: refused") as info:
        import_backbone(entry, image_size=28, channels=1)
    assert not marker.exists()
    # The reason in full, not cut mid-sentence: what the file would have run, and that nothing ran.
    assert re.search(r"\((Trying to load unsupported GLOBAL|Unsupported global: GLOBAL) [^)]*\), and weights_only "
                     r"loading never runs code$", str(info.value)), str(info.value)
    assert "add_safe_globals" not in str(info.value)  # not the advice on how to load it anyway


def test_a_hub_file_whose_sha256_does_not_match_its_name_is_refused(tmp_path):
    import hashlib

    state = {"w": torch.zeros(2)}
    probe = tmp_path / "probe.pth"
    torch.save(state, probe)
    digest = hashlib.sha256(probe.read_bytes()).hexdigest()
    good = tmp_path / f"net-{digest[:8]}.pth"
    probe.rename(good)
    files.check_hub_hash(good)  # its name carries the start of its hash: accepted, as torch.hub would
    bad = tmp_path / f"net-{'0' if digest[0] != '0' else '1'}{digest[1:8]}.pth"
    good.rename(bad)
    with pytest.raises(BackboneImportError, match=rf"{re.escape(str(bad))}: its sha256 starts {digest[:8]}, not "):
        files.check_hub_hash(bad)
    plain = tmp_path / "mine.pth"  # no hash in the name: nothing to check
    bad.rename(plain)
    files.check_hub_hash(plain)


def test_torchvision_weights_in_the_cache_that_do_not_match_their_name_are_refused(tmp_path, monkeypatch):
    home = tmp_path / "torch-home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    path = hub_checkpoint(torchvision_weights("resnet18", "IMAGENET1K_V1").url)
    path.parent.mkdir(parents=True)
    torch.save(torchvision.models.resnet18().state_dict(), path)  # random weights under the real name
    entry = ImportedBackboneParams(name="rn18", kind="torchvision", arch="resnet18", weights="IMAGENET1K_V1")
    with pytest.raises(BackboneImportError, match=rf"{re.escape(path.name)}: its sha256 starts .* as its file name says"):
        import_backbone(entry, image_size=28, channels=1)
