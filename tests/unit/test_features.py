"""Frozen features: training the head on cached features is training it on the whole network, only faster."""
import copy

import pytest
import torch
from torch import nn

from transferlab.core.frozen import extract_features, feature_head, plan_batches, train_head
from transferlab.core.engine import TrainConfig, predict_logits, to_input
from transferlab.experiments.transfer.rules import fit
from transferlab.models import create_model, head_module_name
from transferlab.params import FinetuneParams
from transferlab.core.recipes import apply_recipe


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Models this small train fastest on one thread (more only contend, for the cores and with other jobs)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _images(n: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=gen), torch.arange(n) % 10


def _clips(n: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randint(-8000, 8000, (n, 4000), dtype=torch.int16, generator=gen), torch.arange(n) % 2


MODELS = {  # name → (builder, data): small sizes, so every test here runs in seconds
    "convnet": (lambda: create_model("convnet", 10, widths=[8, 16, 32], dropout=0.5), _images),
    "audio_crnn": (lambda: create_model("audio_crnn", 2, widths=[8, 16, 16], dropout=0.5), _clips),
    "tv:resnet18": (lambda: create_model("tv:resnet18", 10, in_chans=1, resize_size=32, crop_size=32,
                                         mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), interpolation="bilinear"),
                    _images),
}


def _model(name: str) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A model with BatchNorm statistics that are not the initial ones (as pre-training leaves them), new head."""
    build, data = MODELS[name]
    torch.manual_seed(0)
    model = build()
    samples, labels = data()
    with torch.no_grad():
        model.train()(to_input(samples[:16]))
    model.reset_classifier(int(labels.max()) + 1)
    return model, samples, labels


def _split(model: nn.Module) -> tuple[dict, dict]:
    head = head_module_name(model) + "."
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return ({k: v for k, v in state.items() if not k.startswith(head)},
            {k: v for k, v in state.items() if k.startswith(head)})


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _same_body(body: dict, body0: dict) -> bool:
    """Weights and BatchNorm statistics unchanged (freezing drops the num_batches_tracked counters; never read)."""
    floats = [k for k, v in body0.items() if v.is_floating_point()]
    return bool(floats) and all(torch.equal(body[k], body0[k]) for k in floats)


def _close(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-6) for k in a)


def _fit(model, strategy, samples, labels, steps=12, **params):
    cfg = FinetuneParams(batch_size=8, **{"augment": False, **params})
    torch.manual_seed(1)  # the head's dropout draws from the global generator
    gen = torch.Generator().manual_seed(2)
    fit(model, strategy, cfg, samples, labels, steps, gen)
    return gen


@pytest.mark.parametrize("name", list(MODELS))
def test_cached_head_training_is_uncached_training_and_the_body_stays_bit_identical(name):
    model, samples, labels = _model(name)
    body0, _ = _split(model)
    runs = {}
    for cached in (False, True):
        m = copy.deepcopy(model)
        gen = _fit(m, "head", samples, labels, cached_features=cached)
        runs[cached] = (*_split(m), gen.get_state())
    (body_u, head_u, gen_u), (body_c, head_c, gen_c) = runs[False], runs[True]
    assert _same_body(body_c, body0) and _same_body(body_u, body0)
    # The same batches (the generator ends in the same state) and the same dropout masks; the body saw other batch
    # sizes, which may round differently, so the heads agree to rounding (on one CPU thread they are identical).
    assert torch.equal(gen_u, gen_c)
    assert _close(head_c, head_u) and not _same(head_c, _split(model)[1])


def test_lp_ft_fine_tunes_from_the_cached_probes_head():
    model, samples, labels = _model("convnet")
    heads = {}
    for cached in (False, True):
        m = copy.deepcopy(model)
        seen = {}
        cfg = FinetuneParams(batch_size=8, augment=False, cached_features=cached)
        torch.manual_seed(1)
        fit(m, "lp_ft", cfg, samples, labels, 12, torch.Generator().manual_seed(2),
            on_phase=lambda phase, x: seen.setdefault(phase, _split(x)[1]))
        heads[cached] = (seen["fine-tune"], _split(m))
    # Phase 2 starts from the probe's trained head: the model holds it, equal to the uncached probe's.
    assert _close(heads[True][0], heads[False][0]) and not _same(heads[True][0], _split(model)[1])
    # ... so the whole lp_ft run, fine-tuning included, is the uncached one.
    assert _close(heads[True][1][0], heads[False][1][0]) and _close(heads[True][1][1], heads[False][1][1])


@pytest.mark.parametrize("strategy, cached", [("head", True), ("lp_ft", True), ("last_k", False), ("full", False),
                                              ("scratch", False), ("surgical", False)])
def test_only_a_frozen_body_is_cached(strategy, cached):
    model, _, _ = _model("convnet")
    apply_recipe(model, strategy, FinetuneParams())
    assert (feature_head(model) is not None) == cached


def test_a_body_with_dropout_is_not_cached():
    # mobilenet's pre-logits dropout sits inside the torchvision network, i.e. in the frozen body: random per step.
    model = create_model("tv:mobilenet_v3_small", 10, in_chans=1, resize_size=32, crop_size=32)
    apply_recipe(model, "head", FinetuneParams())
    assert feature_head(model) is None
    model.net.classifier[2].p = 0.0
    assert feature_head(model) is not None


def test_the_heads_own_dropout_still_acts_in_training():
    model, samples, _ = _model("convnet")
    apply_recipe(model, "head", FinetuneParams())
    head = feature_head(model)
    assert head.classifier is model.head and head.dropout is model.head_drop  # the model's own modules
    features = extract_features(model, samples[:8])
    assert torch.allclose(features, predict_logits(model, samples[:8], pre_logits=True))
    torch.manual_seed(0)
    a, b = head.train()(features), head(features)
    assert not torch.equal(a, b)
    assert torch.equal(head.eval()(features), model.head(features))


@pytest.mark.parametrize("name", ["convnet", "audio_crnn"])
def test_augmented_views_are_seeded_and_only_the_pairs_drawn_are_computed(name):
    model, samples, labels = _model(name)
    apply_recipe(model, "head", FinetuneParams())
    cfg = TrainConfig(steps=6, batch_size=8, augment=True)
    group = lambda m: [{"name": "head", "params": list(m.head.parameters()), "lr": 0.01}]  # noqa: E731
    results = []
    for seed in (2, 2, 3):
        m = copy.deepcopy(model)
        torch.manual_seed(1)
        passes = train_head(m, feature_head(m), samples, labels, group(m), cfg, torch.Generator().manual_seed(seed),
                            views=3).body_passes
        results.append(_split(m)[1])
        assert passes <= min(3 * len(samples), cfg.steps * cfg.batch_size)
    assert _same(results[0], results[1]) and not _same(results[0], results[2])
    keys = torch.cat(plan_batches(len(samples), labels, cfg, torch.Generator().manual_seed(2), 3))
    assert keys.max() >= len(samples) and keys.max() < 3 * len(samples)  # rows of several views


def test_views_are_augmented_features_and_without_augment_no_views():
    model, samples, labels = _model("convnet")
    apply_recipe(model, "head", FinetuneParams())
    clean = extract_features(model, samples[:8])
    augmented = extract_features(model, samples[:8], generator=torch.Generator().manual_seed(0))
    assert clean.shape == augmented.shape and not torch.allclose(clean, augmented)
    plain = plan_batches(len(samples), labels, TrainConfig(steps=6, batch_size=8), torch.Generator(), views=3)
    assert torch.cat(plain).max() < len(samples)  # train_head passes views only with augmentation
