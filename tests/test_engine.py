"""The one training engine: any positive step count trains (short runs included)."""
import pytest
import torch

from transferlab.engine import TrainConfig, train
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
    from transferlab.engine import predict_logits

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
