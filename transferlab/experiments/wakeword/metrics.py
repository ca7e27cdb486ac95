"""Detector metrics for wake-word models: AUROC, false rejects at a fixed false-accept rate, false accepts
per hour of negative audio, and DET curves."""
from __future__ import annotations

import numpy as np
import torch


def positive_scores(logits: torch.Tensor) -> np.ndarray:
    """P(wake word) from two-class logits (class 1 is the wake word)."""
    return torch.softmax(logits.float(), 1)[:, 1].numpy()


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores)) if len(np.unique(labels)) == 2 else float("nan")


def frr_at_far(scores: np.ndarray, labels: np.ndarray, far: float) -> float:
    """False-reject rate at the strictest threshold that accepts at most `far` of the negatives."""
    neg = np.sort(scores[labels == 0])[::-1]
    pos = scores[labels == 1]
    allowed = int(np.floor(far * len(neg)))  # false accepts we may make
    threshold = neg[allowed] if allowed < len(neg) else -np.inf  # accept only scores above it
    return float(np.mean(pos <= threshold))


def at_threshold(scores: np.ndarray, labels: np.ndarray, threshold: float, clip_seconds: float) -> dict:
    """FRR, FAR and false accepts per hour of negative audio when accepting scores ≥ threshold."""
    neg, pos = scores[labels == 0], scores[labels == 1]
    false_accepts = int((neg >= threshold).sum())
    hours = len(neg) * clip_seconds / 3600
    return {"frr": float(np.mean(pos < threshold)), "far": false_accepts / max(len(neg), 1),
            "fa_per_hour": false_accepts / hours if hours else float("nan")}


def det_points(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FAR, FRR) over all thresholds, from sklearn's det_curve."""
    from sklearn.metrics import det_curve

    far, frr, _ = det_curve(labels, scores)
    return far, frr


def detection_metrics(logits: torch.Tensor, labels: torch.Tensor, far_targets: list[float], threshold: float,
                      clip_seconds: float) -> dict:
    scores, y = positive_scores(logits), labels.numpy()
    out = {"auroc": auroc(scores, y)}
    out.update({far_key(f): frr_at_far(scores, y, f) for f in far_targets})
    op = at_threshold(scores, y, threshold, clip_seconds)
    out.update({"frr_at_threshold": op["frr"], "fa_per_hour": op["fa_per_hour"]})
    return out


def far_key(far: float) -> str:
    return f"frr_at_far{far * 100:g}".replace(".", "_")


def rate_key(fa_per_hour: float) -> str:
    """The runs-table column of FRR at a false-accept rate per hour of continuous audio: frr_at_0_5fa_h."""
    return f"frr_at_{fa_per_hour:g}fa_h".replace(".", "_")
