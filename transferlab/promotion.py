"""Champion vs challenger on the fixed test set: register the newest fine-tuned model and promote it
only when it beats the current champion by a margin."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import registry
from .artifacts import load_model
from .data.prepared import load_prepared
from .distillation import pick_teacher
from .engine import predict_logits
from .io import dir_md5


def test_accuracy(model_dir: Path, target_dir: Path) -> float:
    """Accuracy of a saved model on the target's test split (the fixed test set)."""
    model, card = load_model(model_dir)
    target = load_prepared(target_dir)
    if card["classes"] != target.classes:
        raise ValueError(f"{model_dir}: classes {card['classes']} differ from the target's {target.classes}")
    test = target.rows("test")
    pred = predict_logits(model, target.samples[test]).argmax(1)
    return float((pred == target.labels[test]).float().mean())


def champion_vs_challenger(root: Path, name: str, finetune_dir: Path, models_dir: Path, target_dir: Path,
                           margin: float) -> dict:
    """Register the best fine-tuned model at the largest pool; promote it if it beats the champion by
    `margin` (accuracy, both scored now on the same test set)."""
    challenger_dir = pick_teacher(pd.read_csv(finetune_dir / "runs.csv"), models_dir, "best")
    challenger_acc = test_accuracy(challenger_dir, target_dir)
    current = registry.champion(root, name)
    champion_acc = test_accuracy(root / current["path"], target_dir) if current else None
    entry = registry.register(root, name, challenger_dir, {"test_accuracy": round(challenger_acc, 5)},
                              dir_md5(target_dir))
    better = champion_acc is None or challenger_acc >= champion_acc + margin
    if better:
        registry.promote(root, name, entry["version"])
    return {"name": name, "challenger_version": entry["version"], "challenger": challenger_dir.as_posix(),
            "challenger_accuracy": challenger_acc, "champion_version": current["version"] if current else None,
            "champion_accuracy": champion_acc, "margin": margin, "promoted": better,
            "reason": ("no champion yet" if champion_acc is None else
                       f"{challenger_acc:.4f} {'≥' if better else '<'} {champion_acc:.4f} + margin {margin}")}
