"""The one training engine: any positive step count trains (short runs included)."""
import pytest
import torch

from transferlab.core.engine import TrainConfig, train
from transferlab.models import create_model


@pytest.mark.parametrize("steps", [1, 2, 3, 5])
def test_every_positive_step_count_trains_and_changes_the_weights(steps):
    torch.manual_seed(0)
    model = create_model("convnet_small", num_classes=10, in_chans=1, widths=[4, 8, 8])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images = torch.randint(0, 256, (20, 1, 28, 28), dtype=torch.uint8)
    labels = torch.arange(20) % 10
    groups = [{"name": "all", "params": list(model.parameters()), "lr": 0.01}]
    train(model, images, labels, groups, TrainConfig(steps=steps, batch_size=8), torch.Generator().manual_seed(0))
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items() if v.is_floating_point())


@pytest.mark.parametrize("widths, layout", [([8, 16, 16], torch.channels_last), ([4, 8, 8], torch.contiguous_format)])
def test_training_runs_in_the_layout_of_its_widths_and_hands_back_contiguous_weights(widths, layout):
    """Channels-last weights and inputs while training a network whose convolutions all have >= 8 channels,
    contiguous ones for a narrower network (oneDNN is slower channels-last there); contiguous weights after."""
    from transferlab.core.engine import predict_logits

    torch.manual_seed(0)
    model = create_model("convnet_small", num_classes=10, in_chans=1, widths=widths)
    convs = [p for p in model.parameters() if p.ndim == 4 and p.shape[1] > 1]
    images = torch.randint(0, 256, (20, 1, 28, 28), dtype=torch.uint8)
    labels = torch.arange(20) % 10
    seen, inputs = [], []
    hook = model.register_forward_pre_hook(lambda _, args: inputs.append(args[0].is_contiguous(memory_format=layout)))

    def on_step(_):
        # A validation pass inside training (pre-training does one) leaves the layout to the outer call.
        predict_logits(model, images[:4])
        seen.append(all(p.is_contiguous(memory_format=layout) and p.is_contiguous() == (layout == torch.contiguous_format)
                        for p in convs))
    train(model, images, labels, [{"params": list(model.parameters()), "lr": 0.01}],
          TrainConfig(steps=3, batch_size=8, augment=True), torch.Generator().manual_seed(0), on_step=on_step, every=1)
    hook.remove()
    assert seen == [True, True, True] and inputs and all(inputs)
    # Saved weights (safetensors needs contiguous tensors) and anything after training see the usual layout.
    assert all(p.is_contiguous() for p in model.parameters())


def test_early_stopping_stops_before_the_cap_once_validation_stops_improving_and_keeps_the_best_weights():
    from transferlab.core.convergence import CONVERGED, holdout, loss_score, stopper_for
    from transferlab.core.engine import to_input
    from transferlab.params.base import ConvergenceParams

    from ..conftest import tiny_digits

    data = tiny_digits()
    rule = ConvergenceParams(patience=3)
    fit_rows, val_rows = holdout(data.labels, data.rows("train"), rule, 0)
    assert len(val_rows) == 30 and not set(fit_rows) & set(val_rows)  # 3 of each class's 15 held out
    torch.manual_seed(0)
    model = create_model("convnet_small", num_classes=10, widths=[8, 16, 32])
    score = loss_score(data.samples[val_rows], data.labels[val_rows], to_input)
    stopper = stopper_for(rule, len(fit_rows), 16, False, score)
    cap = 3000
    outcome = train(model, data.samples[fit_rows], data.labels[fit_rows],
                    [{"params": list(model.parameters()), "lr": 3e-3}], TrainConfig(steps=cap, batch_size=16),
                    torch.Generator().manual_seed(0), stopper=stopper)
    assert outcome.stopped == CONVERGED and outcome.steps < cap // 5
    # It stopped `patience` checks after its best, and handed back the best weights, not the last.
    assert outcome.steps == outcome.best_step + rule.patience * stopper.every
    assert score(model) == pytest.approx(stopper.best, abs=1e-6)
    assert outcome.row()["stopped"] == "converged" and outcome.cap_steps == cap


def test_a_pool_too_small_to_split_stops_on_its_training_loss_and_a_short_cap_is_reported():
    from transferlab.core.convergence import CAP, holdout, stopper_for
    from transferlab.params.base import ConvergenceParams

    from ..conftest import tiny_digits

    data = tiny_digits()
    rule = ConvergenceParams()
    rows = data.pool(0, 1)
    fit_rows, val_rows = holdout(data.labels, rows, rule, 0)
    assert len(val_rows) == 0 and list(fit_rows) == list(rows)  # 1 per class: nothing to hold out
    stopper = stopper_for(rule, len(fit_rows), 16, True, None)
    assert "training loss" in stopper.rule_name
    model = create_model("convnet_small", num_classes=10, widths=[8, 16, 32])
    outcome = train(model, data.samples[fit_rows], data.labels[fit_rows],
                    [{"params": list(model.parameters()), "lr": 3e-3}], TrainConfig(steps=12, batch_size=16,
                                                                                     augment=True),
                    torch.Generator().manual_seed(0), stopper=stopper)
    assert outcome.stopped == CAP and outcome.steps == 12  # 12 steps cannot show a plateau: under-trained
