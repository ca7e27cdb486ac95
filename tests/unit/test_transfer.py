"""The fine-tuning strategies beyond one plain recipe: lp_ft, l2_sp, surgical, wise_ft, and a sweep over them."""
import copy

import numpy as np
import pytest
import torch
from torch import nn

from transferlab.system.context import Runtime
from transferlab.models.artifacts import make_card, save_model
from transferlab.models.preprocessing import image_preprocessing
from transferlab.data.prepared import write_prepared
from transferlab.core.convergence import stopper_for
from transferlab.core.engine import TrainConfig, train
from transferlab.experiments.transfer.finetune import run_sweep
from transferlab.analysis.sweep import PREDICTIONS_FILE
from transferlab.experiments.transfer.rules import L2SP, body_state, fit, split_steps, wise_mix
from transferlab.models import body_groups, create_model, head_module_name
from transferlab.params import FinetuneParams
from transferlab.core.recipes import apply_recipe

from ..conftest import tiny_digits


def _pretrained(classes: int = 10) -> nn.Module:
    """A convnet_small with non-trivial weights and BatchNorm statistics, as pre-training would leave it."""
    torch.manual_seed(0)
    model = create_model("convnet_small", num_classes=26)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(16, 1, 28, 28) * 2 + 1)
    model.reset_classifier(classes)
    return model


def _split(state: dict, model: nn.Module) -> tuple[dict, dict]:
    head = head_module_name(model) + "."
    body = {k: v.clone() for k, v in state.items() if not k.startswith(head)}
    return body, {k: v.clone() for k, v in state.items() if k.startswith(head)}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Models this small train fastest on one thread (more only contend, for the cores and with other jobs)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


DATA = tiny_digits()
ROWS = DATA.pool(0, 5)
CFG = FinetuneParams(batch_size=8, augment=False)


def _fit(model: nn.Module, strategy: str, steps: int = 8, cfg: FinetuneParams = CFG, **kw):
    torch.manual_seed(1)
    return fit(model, strategy, cfg, DATA.samples[ROWS], DATA.labels[ROWS], steps, torch.Generator().manual_seed(2),
               **kw)[0]


def test_lp_ft_fine_tunes_from_the_probed_head_and_moves_the_body_only_then():
    model = _pretrained()
    body0, _ = _split(model.state_dict(), model)
    seen: dict[str, tuple[dict, dict]] = {}

    def on_phase(name, m):
        seen[name] = _split(m.state_dict(), m)
        if name == "fine-tune":  # the body is thawed: trainable, and BatchNorm learns its statistics again
            assert all(p.requires_grad for p in m.parameters())
            assert any(isinstance(x, nn.BatchNorm2d) for x in m.modules())
    recipe = _fit(model, "lp_ft", on_phase=on_phase)
    assert list(seen) == ["probe", "fine-tune"] and recipe.frozen_modules == ()
    # Phase 1 trained the head on a body that did not move (weights and BatchNorm statistics alike).
    body_at_switch, head_at_switch = seen["fine-tune"]
    # (Freezing drops num_batches_tracked and thawing restarts it at 0; with BatchNorm's fixed momentum it is
    # never read, so the weights and statistics are what must match.)
    floats = [k for k, v in body0.items() if v.is_floating_point()]
    assert floats and all(torch.equal(body_at_switch[k], body0[k]) for k in floats)
    assert not _same(head_at_switch, seen["probe"][1])
    # The head at the switch is what a linear probe alone gives: phase 2 starts from it, not from a new head.
    probe = _pretrained()
    torch.manual_seed(1)
    train(probe, DATA.samples[ROWS], DATA.labels[ROWS], apply_recipe(probe, "head", CFG).param_groups,
          TrainConfig(steps=split_steps(8, CFG.lp_ft_probe_fraction)[0], batch_size=8, weight_decay=CFG.weight_decay),
          torch.Generator().manual_seed(2), stopper=stopper_for(CFG.convergence, len(ROWS), 8, False, None))
    assert _same(_split(probe.state_dict(), probe)[1], head_at_switch)
    # Phase 2 moved the body.
    body_end, _ = _split(model.state_dict(), model)
    assert any(not torch.equal(body_end[k], body0[k]) for k in body0 if k in body_end)


def test_lp_ft_step_split():
    assert split_steps(80, 0.5) == (40, 40) and split_steps(10, 0.1) == (3, 7) and split_steps(10, 0.95) == (7, 3)
    with pytest.raises(ValueError, match="lp_ft needs at least 6 steps"):
        split_steps(5, 0.5)


def test_l2_sp_penalty_is_zero_at_the_pretrained_weights_and_pulls_back_to_them():
    model = _pretrained()
    apply_recipe(model, "l2_sp", CFG)
    penalty = L2SP(model, alpha=0.3, beta=0.0)
    assert penalty().item() == 0.0
    w0 = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    model.zero_grad()
    penalty().backward()
    head = head_module_name(model) + "."
    for n, p in model.named_parameters():
        if n.startswith(head):
            assert p.grad is None or not p.grad.any()  # β = 0: nothing on the head
        else:  # −grad = α (w0 − w): straight back to the pre-trained point
            assert torch.allclose(-p.grad, 0.3 * (w0[n] - p.detach()), atol=1e-6), n
    beta = L2SP(model, alpha=0.0, beta=0.5)
    model.zero_grad()
    beta().backward()
    assert torch.allclose(model.get_classifier().weight.grad, 0.5 * model.get_classifier().weight.detach())


def test_l2_sp_trains_in_the_engine_without_weight_decay():
    model = _pretrained()
    recipe = _fit(model, "l2_sp")
    assert all(g["weight_decay"] == 0.0 for g in recipe.param_groups) and recipe.frozen_modules == ()


@pytest.mark.parametrize("block", ["first", "middle", "last"])
def test_surgical_leaves_every_other_block_bit_identical(block):
    model = _pretrained()
    groups = body_groups(model)
    k = {"first": 0, "middle": len(groups) // 2, "last": len(groups) - 1}[block]
    prefix = groups[k][0].rsplit(".", 3)[0] + "."  # e.g. "blocks.1."
    before = copy.deepcopy(model.state_dict())
    _fit(model, f"surgical@{block}")
    after = model.state_dict()
    head = head_module_name(model) + "."
    others = [key for key in before if key in after and not key.startswith((prefix, head))]
    assert others and all(torch.equal(before[key], after[key]) for key in others)
    assert any(k.endswith("running_mean") for k in others)  # BatchNorm statistics are among them
    tuned = [key for key in after if key.startswith(prefix) and after[key].is_floating_point()]
    assert any(not torch.equal(before[key], after[key]) for key in tuned)


def test_wise_ft_mixes_the_body_between_pretrained_and_fine_tuned():
    model = _pretrained()
    pretrained = body_state(model)
    _fit(model, "wise_ft")
    tuned = model.state_dict()
    at0, at1 = wise_mix(pretrained, model, 0.0).state_dict(), wise_mix(pretrained, model, 1.0).state_dict()
    head = head_module_name(model) + "."
    for key, value in tuned.items():
        if key.startswith(head):
            assert torch.equal(at0[key], value) and torch.equal(at1[key], value)  # the fine-tuned head, always
        else:
            assert torch.equal(at1[key], value)
            assert torch.equal(at0[key], pretrained[key]) or not value.is_floating_point()
    half = wise_mix(pretrained, model, 0.5).state_dict()
    key = next(k for k in pretrained if k.endswith("weight"))
    assert torch.allclose(half[key], (pretrained[key] + tuned[key]) / 2)


def test_a_sweep_of_the_new_strategies_is_paired_by_seed(tmp_path):
    data = tiny_digits()
    write_prepared(tmp_path / "target", data.samples.numpy(), data.labels.numpy(), data.classes, data.metadata,
                   data.pools)
    backbone = create_model("convnet_small", num_classes=26)
    save_model(tmp_path / "bb", backbone, make_card(architecture={"name": "convnet_small", "kwargs": {}},
                                                    classes=[chr(65 + i) for i in range(26)],
                                                    preprocessing=image_preprocessing(28, 1)))
    strategies = ["scratch", "head", "lp_ft", "l2_sp", "surgical", "wise_ft"]
    cfg = FinetuneParams(strategies=strategies, seeds=2, steps=6, steps_per_example=0.0, max_steps=6, batch_size=8,
                         wise_ft_alphas=[0.0, 0.5], surgical_blocks=["first", "last"])
    runs = run_sweep(cfg, {"full": tmp_path / "bb"}, tmp_path / "target", [1, 5], tmp_path / "out",
                     tmp_path / "models", Runtime())
    labels = ["scratch", "head", "lp_ft", "l2_sp", "surgical@first", "surgical@last", "wise_ft@0", "wise_ft@0.5"]
    assert len(runs) == len(labels) * 2 * 2 and not runs.duplicated(["strategy", "per_class", "seed"]).any()
    assert set(runs["strategy"]) == set(labels) and runs["run_id"].is_unique
    # Every run says how it trained and why it stopped.
    assert {"steps", "epochs", "cap_steps", "stopped", "stop_rule"} <= set(runs.columns)
    assert set(runs["stopped"]) <= {"converged", "cap"} and (runs["steps"] <= runs["cap_steps"]).all()
    assert (runs["steps"] > 0).all() and runs["stop_rule"].str.len().gt(0).all()
    # Paired seeds: every strategy sees the same draws, and one draw per seed.
    for (n, seed), g in runs.groupby(["per_class", "seed"]):
        assert sorted(g["strategy"]) == sorted(labels) and g["train_images"].nunique() == 1
    wise = runs[runs["strategy"].str.startswith("wise_ft")]
    assert sorted(wise["wise_ft_alpha"].unique()) == [0.0, 0.5]
    surgical = runs[runs["strategy"].str.startswith("surgical")]
    assert (surgical["strategy"] == "surgical@" + surgical["surgical_block"]).all()
    # Each block trains a different part of the body: their trainable parameter counts differ.
    assert surgical.groupby("strategy")["trainable_params"].first().nunique() == 2
    assert (tmp_path / "models" / "full-wise_ft@0.5-n5").is_dir()
    # Without full in the sweep, wise_ft trained full itself; its α=1 mix would be that run, so with full in the
    # sweep (reused, no second training) the α=1 row equals the full row.
    both = run_sweep(cfg.model_copy(update={"strategies": ["full", "wise_ft"], "wise_ft_alphas": [1.0],
                                            "seeds": 1}), {"full": tmp_path / "bb"}, tmp_path / "target", [5],
                     tmp_path / "out2", tmp_path / "models2", Runtime())
    alone = run_sweep(cfg.model_copy(update={"strategies": ["wise_ft"], "wise_ft_alphas": [1.0], "seeds": 1}),
                      {"full": tmp_path / "bb"}, tmp_path / "target", [5], tmp_path / "out3", tmp_path / "models3",
                      Runtime())
    from safetensors.torch import load_file

    with_full, without = (load_file(tmp_path / out / PREDICTIONS_FILE) for out in ("out2", "out3"))
    assert torch.equal(with_full["full/wise_ft@1/n5/s0"], with_full["full/full/n5/s0"])
    assert torch.equal(without["full/wise_ft@1/n5/s0"], with_full["full/full/n5/s0"])
    assert list(alone["strategy"]) == ["wise_ft@1"]  # the full training it needed is no row of its own
    assert np.isclose(both.set_index("strategy").loc["wise_ft@1", "train_seconds"], 0, atol=0.5)


def test_lp_ft_with_too_few_steps_fails_when_params_load():
    from transferlab.params import ParamsError, parse_params

    with pytest.raises(ParamsError, match="lp_ft needs at least 6 steps"):
        parse_params({"finetune": {"strategies": ["lp_ft"], "steps": 4, "steps_per_example": 0.0}})
    assert parse_params({"finetune": {"strategies": ["full"], "steps": 4}}).finetune.steps == 4
