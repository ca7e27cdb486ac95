import pytest
import torch
from torch import nn

from transferlab.models.artifacts import load_model, make_card, save_model
from transferlab.models.preprocessing import image_preprocessing
from transferlab.core.engine import TrainConfig, train
from transferlab.models import body_groups, create_model, head_module_name, list_models, modality
from transferlab.params import FinetuneParams
from transferlab.core.recipes import STRATEGIES, apply_recipe


@pytest.mark.parametrize("name", list_models())
def test_registry_models_have_timm_interface(name):
    chans = 3 if name == "resnet18" else 1
    size = 32 if name == "resnet18" else 28
    model = create_model(name, num_classes=7, in_chans=chans).eval()
    x = torch.randn(2, 1, 16000) * 0.1 if modality(name) == "audio" else torch.randn(2, chans, size, size)
    assert model(x).shape == (2, 7)
    feats = model.forward_features(x)
    assert feats.ndim in (3, 4) and feats.shape[0] == 2
    assert model.forward_head(feats, pre_logits=True).shape == (2, model.num_features)
    model.reset_classifier(3)
    assert model(x).shape == (2, 3)
    assert len(body_groups(model)) >= 3
    assert not any(n.startswith(head_module_name(model) + ".") for g in body_groups(model) for n in g)


def test_unknown_model_is_named():
    with pytest.raises(KeyError, match="nope"):
        create_model("nope", 3)


def _pretrained():
    torch.manual_seed(0)
    model = create_model("convnet", num_classes=26, widths=[8, 16, 32])
    # Give BN non-trivial statistics, as pre-training would.
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(16, 1, 28, 28) * 2 + 1)
    return model


def test_reset_classifier_puts_a_new_random_head():
    model = _pretrained()
    old_head = model.get_classifier().weight.detach().clone()
    body = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("head.")}
    model.reset_classifier(10)
    new = model.get_classifier()
    assert new.weight.shape == (10, model.num_features)
    assert not torch.equal(new.weight[:10], old_head[:10])
    for k, v in model.state_dict().items():
        if k in body:
            assert torch.equal(v, body[k]), k


def _data(n=40, classes=10):
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=g), torch.arange(n) % classes


def test_head_mode_freezes_body_weights_and_batchnorm_stats():
    model = _pretrained()
    model.reset_classifier(10)
    recipe = apply_recipe(model, "head", FinetuneParams())
    before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("head.")}
    head_before = model.get_classifier().weight.detach().clone()
    images, labels = _data()
    train(model, images, labels, recipe.param_groups, TrainConfig(steps=5, batch_size=8, augment=True),
          torch.Generator().manual_seed(0))
    model.train()  # freezing must survive train mode
    with torch.no_grad():
        model(torch.randn(8, 1, 28, 28))
    after = model.state_dict()
    for k, v in before.items():
        assert torch.equal(after[k], v), f"{k} changed"
    assert not torch.equal(model.get_classifier().weight, head_before)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert all(not p.requires_grad for n, p in model.named_parameters() if not n.startswith("head."))


def test_strategies_freeze_what_they_say():
    cfg = FinetuneParams(last_k=1)
    counts = {}
    for strategy in STRATEGIES:
        model = _pretrained()
        model.reset_classifier(10)
        recipe = apply_recipe(model, strategy, cfg)
        counts[strategy] = sum(p.numel() for p in model.parameters() if p.requires_grad)
        lrs = {g["name"]: g["lr"] for g in recipe.param_groups}
        if strategy == "discriminative":
            body = [lr for name, lr in lrs.items() if name != "head"]
            assert body == sorted(body, reverse=True) and max(body) < lrs["head"]
    total = sum(p.numel() for p in _pretrained().parameters()) - 26 * 33 + 10 * 33
    assert counts["full"] == counts["scratch"] == counts["discriminative"] == total
    assert counts["head"] == 10 * 33
    assert counts["head"] < counts["last_k"] < counts["full"]


def test_model_card_round_trip_keeps_frozen_parts(tmp_path):
    model = _pretrained()
    model.reset_classifier(10)
    recipe = apply_recipe(model, "last_k", FinetuneParams(last_k=1))
    card = make_card(architecture={"name": "convnet", "kwargs": {"widths": [8, 16, 32], "dropout": 0.1}},
                     classes=[str(i) for i in range(10)], preprocessing=image_preprocessing(28, 1),
                     frozen_modules=recipe.frozen_modules)
    save_model(tmp_path / "m", model, card)
    loaded, loaded_card = load_model(tmp_path / "m")
    x = torch.randn(4, 1, 28, 28)
    model.eval()
    assert torch.allclose(loaded(x), model(x))
    assert loaded_card["frozen_modules"] == list(recipe.frozen_modules)
    frozen = [n for n, p in loaded.named_parameters() if not p.requires_grad]
    assert frozen and all(n.startswith("blocks.0") or n.startswith("blocks.1") for n in frozen)
    raw = (tmp_path / "m" / "model.safetensors").read_bytes()
    assert raw[8:9] == b"{"  # safetensors: 8-byte header length, then a JSON header — no pickle anywhere


def _input(name: str, n: int = 8) -> torch.Tensor:
    if modality(name) == "audio":
        return torch.randn(n, 1, 16000) * 0.1
    chans, size = (3, 32) if name == "resnet18" else (1, 28)
    return torch.randn(n, chans, size, size)


@pytest.mark.parametrize("name", list_models())
def test_frozen_batchnorm_keeps_its_statistics_in_train_mode(name):
    """Every BatchNorm (2-D and M5's 1-D) under a frozen module keeps its running statistics through a
    train-mode forward pass; unfreezing makes them learn again."""
    from transferlab.models import freeze_modules, owning_modules, unfreeze_modules

    torch.manual_seed(0)
    model = create_model(name, num_classes=4, in_chans=3 if name == "resnet18" else 1)
    frozen = owning_modules([n for g in body_groups(model) for n in g])
    freeze_modules(model, frozen)
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    assert before
    model.train()
    with torch.no_grad():
        model(_input(name) * 3 + 1)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    unfreeze_modules(model, frozen)
    assert all(p.requires_grad for p in model.parameters())
    model.train()
    with torch.no_grad():
        model(_input(name) * 3 + 1)
    assert any(not torch.equal(model.state_dict()[k], v) for k, v in before.items())


def test_artifacts_import_the_models_not_the_transfer_recipes():
    import subprocess
    import sys

    code = "import sys, transferlab.models.artifacts; print(sorted(m for m in sys.modules if m.startswith('transferlab.')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "transferlab.models" in loaded and "transferlab.core.recipes" not in loaded
