"""Training objectives beyond plain cross-entropy, all pluggable into the one engine (engine.Objective)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_bce(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, float | None]:
    """Multi-task logistic loss J = 1/m Σ_i Σ_j L(ŷ_ij, y_ij) over the labelled entries only.

    Missing labels ("?") are NaN in `targets`; they get weight 0, so they contribute no gradient.
    """
    labelled = ~torch.isnan(targets)
    if not labelled.any():
        return logits.sum() * 0.0, None
    y = torch.where(labelled, targets, torch.zeros_like(targets))
    per_entry = F.binary_cross_entropy_with_logits(logits, y, weight=labelled.float(), reduction="none")
    loss = per_entry.sum() / logits.shape[0]  # 1/m over examples, summed over tasks
    correct = ((logits > 0) == (y > 0.5))[labelled].float().mean().item()
    return loss, correct


def distillation(temperature: float, alpha: float):
    """Hinton et al.: α·T²·KL(teacher_T ‖ student_T) + (1 − α)·CE(student, hard labels).

    Targets are (hard labels, teacher logits). α = 0 is exactly the hard-label loss."""
    def objective(logits: torch.Tensor, targets: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, float]:
        labels, teacher = targets
        hard = F.cross_entropy(logits, labels)
        accuracy = (logits.argmax(1) == labels).float().mean().item()
        if alpha == 0:
            return hard, accuracy
        soft = F.kl_div(F.log_softmax(logits / temperature, 1), F.log_softmax(teacher / temperature, 1),
                        reduction="batchmean", log_target=True) * temperature ** 2  # T² keeps gradients comparable
        return alpha * soft + (1 - alpha) * hard, accuracy
    return objective


def prototypes(embeddings: torch.Tensor, labels: torch.Tensor, ways: int) -> torch.Tensor:
    """Mean embedding of each class 0..ways-1."""
    sums = torch.zeros(ways, embeddings.shape[1], dtype=embeddings.dtype, device=embeddings.device)
    sums.index_add_(0, labels, embeddings)
    counts = torch.bincount(labels, minlength=ways).clamp(min=1).unsqueeze(1)
    return sums / counts


def prototype_logits(queries: torch.Tensor, protos: torch.Tensor) -> torch.Tensor:
    """Negative squared Euclidean distance to each prototype (Snell et al. 2017)."""
    return -torch.cdist(queries, protos).pow(2)


def prototypical(embeddings: torch.Tensor, targets: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, float]:
    """Episode loss: prototypes from the support rows, cross-entropy of the query rows against them.

    Targets are (episode-relative class, is_query flag) per row of the episode."""
    labels, is_query = targets
    query = is_query.bool()
    ways = int(labels.max()) + 1
    logits = prototype_logits(embeddings[query], prototypes(embeddings[~query], labels[~query], ways))
    loss = F.cross_entropy(logits, labels[query])
    return loss, (logits.argmax(1) == labels[query]).float().mean().item()
