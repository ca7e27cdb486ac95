"""The losses of the other forms of transfer: masked multi-label BCE, distillation, prototypical."""
import torch
import torch.nn.functional as F

from transferlab.core.objectives import distillation, masked_bce, prototypical


def test_a_masked_entry_contributes_zero_gradient():
    logits = torch.randn(4, 3, requires_grad=True)
    targets = torch.tensor([[1.0, float("nan"), 0.0], [0.0, 1.0, float("nan")], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    loss, _ = masked_bce(logits, targets)
    loss.backward()
    assert logits.grad[0, 1] == 0 and logits.grad[1, 2] == 0
    labelled = ~torch.isnan(targets)
    assert (logits.grad[labelled] != 0).all()
    # The loss is torch's own BCE-with-logits summed over labelled entries, divided by the number of examples.
    expected = F.binary_cross_entropy_with_logits(logits[labelled], targets[labelled], reduction="sum") / 4
    assert torch.allclose(loss, expected)
    # A missing label changes nothing whatever it would have been.
    other = targets.clone()
    other[0, 1] = 1.0
    assert not torch.allclose(masked_bce(logits, other)[0], loss)
    assert torch.allclose(masked_bce(logits, targets)[0], loss)


def test_distillation_loss_is_the_hard_label_loss_when_alpha_selects_hard_labels():
    g = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(8, 10, generator=g), torch.randn(8, 10, generator=g)
    labels = torch.randint(0, 10, (8,), generator=g)
    hard, _ = distillation(temperature=4.0, alpha=0.0)(student, (labels, teacher))
    assert torch.allclose(hard, F.cross_entropy(student, labels))
    soft, _ = distillation(temperature=4.0, alpha=1.0)(student, (labels, teacher))
    kl = F.kl_div(F.log_softmax(student / 4, 1), F.softmax(teacher / 4, 1), reduction="batchmean") * 16
    assert torch.allclose(soft, kl, atol=1e-6)
    mixed, _ = distillation(temperature=4.0, alpha=0.3)(student, (labels, teacher))
    assert torch.allclose(mixed, 0.3 * kl + 0.7 * hard, atol=1e-6)
    # A student that already matches the teacher has nothing left to learn from it.
    same = teacher.clone().requires_grad_(True)
    distillation(4.0, 1.0)(same, (labels, teacher))[0].backward()
    assert same.grad.abs().max() < 1e-6


def test_prototypical_loss_prefers_separated_embeddings():
    rel = torch.tensor([0, 0, 1, 1, 0, 1])
    query = torch.tensor([0, 0, 0, 0, 1, 1])
    good = torch.tensor([[0.0, 0], [0.1, 0], [5, 5], [5.1, 5], [0.05, 0], [5, 5.1]])
    bad = good[[0, 2, 1, 3, 5, 4]]
    loss_good, acc_good = prototypical(good, (rel, query))
    loss_bad, _ = prototypical(bad, (rel, query))
    assert acc_good == 1.0 and loss_good < loss_bad
