"""Imported timm backbones (transferlab.models.pretrained.timm, family timm:<name>): real timm architectures with random
weights placed in a temporary Hugging Face cache laid out as huggingface_hub keeps it, offline, never downloaded."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import save_file

from stages import import_backbones as stage
from transferlab.models.artifacts import load_model, make_card, save_model
from transferlab.core.engine import to_input
from transferlab.system.io import file_md5
from transferlab.models import body_groups, create_model, head_module_name
from transferlab.params import FinetuneParams, ImportedBackboneParams
from transferlab.models.pretrained import BackboneImportError, import_backbone, weights_file
from transferlab.core.recipes import apply_recipe

from ..conftest import place_timm_weights

ARCH = "resnet18.a1_in1k"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hf_cache(tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face cache, offline: HF_HOME/HF_HUB_CACHE/HF_HUB_OFFLINE, and huggingface_hub's constants
    too (it reads the environment once, at import), so nothing can reach the network."""
    from huggingface_hub import constants

    cache = tmp_path / "hf-home" / "hub"
    monkeypatch.setenv("HF_HOME", str(cache.parent))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def place(cache: Path, name: str = ARCH) -> tuple[Path, dict]:
    return place_timm_weights(cache, name, COMMIT)


def write_params(tmp_path: Path, *entries: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text("backbones:\n" + "".join(f"  - {e}\n" for e in entries))
    return path


def grey_digits(n: int = 4) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(0).integers(0, 256, (n, 28, 28), dtype=np.uint8))


def test_stage_imports_timm_weights_from_the_hf_cache_as_a_pretrained_model_dir(tmp_path, hf_cache):
    path, state = place(hf_cache)
    entry = ImportedBackboneParams(name="t18", kind="timm", arch=ARCH)
    assert weights_file(entry) == path  # located in the cache, nothing downloaded
    params = write_params(tmp_path, f"{{name: t18, kind: timm, arch: {ARCH}}}")
    imported = tmp_path / "models" / "imported"
    stage.main(["--params", str(params), "--weights", str(tmp_path / "weights.json"), "--out", str(imported)])
    out = imported / "t18"
    assert sorted(p.name for p in out.iterdir()) == ["card.json", "model.safetensors"]
    shown = path.resolve().as_posix()  # the blob the snapshot links to, as weights_manifest names it
    manifest = json.loads((imported / "manifest.json").read_text())
    assert manifest == {"t18": {"track": "vision", "kind": "timm", "dir": out.as_posix(), "weights": shown,
                                "md5": file_md5(path)}}
    model, card = load_model(out)
    assert card["architecture"] == {"name": f"timm:{ARCH}", "kwargs": {
        "resize_size": 235, "crop_size": 224, "interpolation": "bicubic", "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225]}}  # crop_pct 0.95: floor(224 / 0.95)
    net = card["preprocessing"]["network_input"]
    assert (net["image_size"], net["channels"], net["channel_repeat"], net["crop_mode"]) == (224, 3, True, "center")
    assert (card["preprocessing"]["image_size"], card["preprocessing"]["channels"]) == (28, 1)  # stored samples
    assert card["parents"] == [{"role": "pretrained-weights", "path": shown, "md5": file_md5(path)}]
    assert card["imported"] == {"kind": "timm", "arch": ARCH, "file": shown, "md5": file_md5(path),
                                "hf_hub_id": f"timm/{ARCH}"}
    assert len(card["classes"]) == 1000 and card["classes"][0] == "tench" and len(set(card["classes"])) == 1000
    assert torch.equal(model.net.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])
    assert torch.equal(model.get_classifier().weight, state["fc.weight"])
    direct, _ = import_backbone(entry, image_size=28, channels=1)
    x = to_input(grey_digits(2))
    with torch.no_grad():
        reloaded = model(x)
        assert reloaded.shape == (2, 1000)
        assert torch.equal(reloaded, direct(x))  # saved and reloaded: the same network


def test_adapter_matches_timm_eval_transforms(hf_cache):
    from PIL import Image
    from timm.data import create_transform, resolve_data_config

    model = create_model(f"timm:{ARCH}", 10, in_chans=3)  # no kwargs: the tag's own preprocessing
    transform = create_transform(**resolve_data_config({}, model=model.net))
    images = np.random.default_rng(1).integers(0, 256, (2, 28, 28, 3), dtype=np.uint8)
    expected = torch.stack([transform(Image.fromarray(a)) for a in images])
    got = model.adapter(to_input(torch.from_numpy(images).permute(0, 3, 1, 2)))
    assert got.shape == expected.shape == (2, 3, 224, 224)
    # PIL's bicubic (and its uint8 rounding) against torch's: close, not bit-equal.
    assert (got - expected).abs().mean() < 0.03


def test_layer_groups_come_from_timm_group_matcher_and_survive_freezing(tmp_path, hf_cache):
    from timm.models import group_parameters

    place(hf_cache)
    model, card = import_backbone(ImportedBackboneParams(name="t", kind="timm", arch=ARCH), image_size=28, channels=1)
    inner = timm.create_model(ARCH, pretrained=False)
    own = group_parameters(inner, inner.group_matcher(coarse=True))
    expected = [[f"net.{n}" for n in names if not n.startswith("fc.")] for _, names in sorted(own.items())]
    groups = body_groups(model)
    assert groups == [g for g in expected if g] and len(groups) == 5  # stem, layer1..layer4, in network order
    assert [g[0].split(".")[1] for g in groups] == ["conv1", "layer1", "layer2", "layer3", "layer4"]
    assert head_module_name(model) == "net.fc"
    model.reset_classifier(10)
    recipe = apply_recipe(model, "last_k", FinetuneParams(last_k=1))
    assert recipe.frozen_modules and all(not m.startswith("net.layer4") for m in recipe.frozen_modules)
    assert body_groups(model)[-1] == groups[-1]  # freezing the rest does not renumber what stays trainable
    model.train()
    x, y = to_input(grey_digits(2)), torch.tensor([0, 1])
    torch.nn.functional.cross_entropy(model(x), y).backward()
    torch.optim.SGD([p for g in recipe.param_groups for p in g["params"]], lr=0.01).step()
    assert model.net.conv1.weight.grad is None and model.net.layer4[0].conv1.weight.grad is not None
    save_model(tmp_path / "tuned", model, make_card(
        architecture=card["architecture"], classes=[str(i) for i in range(10)],
        preprocessing=card["preprocessing"], frozen_modules=recipe.frozen_modules))
    tuned, _ = load_model(tmp_path / "tuned")
    with torch.no_grad():
        out = tuned(x)
        assert torch.allclose(out, model.eval()(x), atol=1e-5) and out.shape == (2, 10)


def test_missing_cache_file_names_the_repo_and_expected_file_and_the_stage_writes_nothing(tmp_path, hf_cache,
                                                                                           capsys):
    entry = ImportedBackboneParams(name="t18", kind="timm", arch=ARCH)
    expected = hf_cache / f"models--timm--{ARCH}" / "snapshots" / "<commit>" / "model.safetensors"
    assert weights_file(entry) == expected
    with pytest.raises(BackboneImportError) as err:
        import_backbone(entry, image_size=28, channels=1)
    message = str(err.value)
    assert "\n" not in message and f"timm/{ARCH}" in message and f"(expected {expected})" in message
    assert f"hf download timm/{ARCH} model.safetensors" in message and "kind timm with path" in message
    params = write_params(tmp_path, f"{{name: t18, kind: timm, arch: {ARCH}}}")
    out = tmp_path / "models" / "imported"
    with pytest.raises(SystemExit) as exit_:
        stage.main(["--params", str(params), "--weights", str(tmp_path / "weights.json"), "--out", str(out)])
    assert exit_.value.code == 2
    assert str(expected) in capsys.readouterr().err
    assert not out.exists() and not (out.parent.exists() and any(out.parent.iterdir()))


def test_unknown_tag_lists_the_known_ones(hf_cache):
    with pytest.raises(BackboneImportError, match=r"resnet18\.nope.*resnet18\.a1_in1k"):
        import_backbone(ImportedBackboneParams(name="t", kind="timm", arch="resnet18.nope"), image_size=28,
                        channels=1)


def test_file_for_another_architecture_names_the_mismatching_key(tmp_path, hf_cache):
    path = tmp_path / "rn18.safetensors"
    state = timm.create_model(ARCH, pretrained=False).state_dict()
    save_file(state, str(path))
    entry = ImportedBackboneParams(name="x", kind="timm", arch="resnet34.a1_in1k", path=str(path))
    with pytest.raises(BackboneImportError, match=r"rn18\.safetensors: does not fit timm resnet34\.a1_in1k: .*"
                                                  r"missing: layer1\.2\.conv1\.weight"):
        import_backbone(entry, image_size=28, channels=1)
    state["layer4.1.conv2.weight"] = torch.zeros(8, 8, 3, 3)
    save_file(state, str(path))
    with pytest.raises(BackboneImportError, match=r"layer4\.1\.conv2\.weight is \[8, 8, 3, 3\] not \[512, 512"):
        import_backbone(ImportedBackboneParams(name="x", kind="timm", arch=ARCH, path=str(path)), image_size=28,
                        channels=1)


def test_kind_timm_with_path_reads_a_pth_with_its_own_head_size(tmp_path, hf_cache):
    arch = "mobilenetv3_small_100.lamb_in1k"
    state = timm.create_model(arch, pretrained=False, num_classes=7).state_dict()
    path = tmp_path / "mnv3-7.pth"
    torch.save(state, path)
    entry = ImportedBackboneParams(name="m", kind="timm", arch=arch, path=str(path))
    assert weights_file(entry) == path
    model, card = import_backbone(entry, image_size=28, channels=1)
    assert card["classes"] == [f"class_{i}" for i in range(7)] and card["parents"][0]["md5"] == file_md5(path)
    assert card["imported"]["hf_hub_id"] == f"timm/{arch}" and card["imported"]["preprocessing_of"] == f"timm {arch}"
    assert card["architecture"]["kwargs"]["resize_size"] == 256  # crop_pct 0.875
    assert torch.equal(model.get_classifier().weight, state["classifier.weight"])
    x = to_input(grey_digits())
    with torch.no_grad():
        assert model(x).shape == (4, 7)
        assert model.forward_head(model.forward_features(x), pre_logits=True).shape == (4, model.num_features)
    assert model.num_features == 1024  # mobilenetv3's pre-logits conv_head, wider than its 576 feature maps
    assert len(body_groups(model)) >= 3 and body_groups(model)[-1][0] == "net.conv_head.weight"
