"""The transfer report: one section per experiment, each reading the claims its stage judged (claims.json) and
the tables it wrote; a contents list and one table of every claim open the document."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from transferlab.system.io import read_json
from transferlab.report.audio import audio_section
from transferlab.report.compare import compare_section
from transferlab.report.distill import distill_section
from transferlab.report.document import Document
from transferlab.report.extrapolation import extrapolation_section
from transferlab.report.fewshot import fewshot_section
from transferlab.report.multitask import multitask_section
from transferlab.report.transferability import transferability_section
from transferlab.report.vision import vision_section

__all__ = ["Document", "ReportInputs", "build_report", "experiment_of"]


def experiment_of(section) -> str:
    """The experiment a report section's claims belong to: the extrapolation check is the vision sweep's."""
    return {"extrapolation": "vision"}.get(section.anchor, section.anchor)


@dataclass(frozen=True)
class ReportInputs:
    """Where each experiment's stage left its results (the report stage's arguments)."""
    evaluation: Path
    confusion: Path
    validation: Path
    backbones: dict[str, Path]  # name → pre-trained model dir; the first is the main backbone
    target: Path
    audio_evaluation: Path
    audio_validation: Path
    audio_backbone: Path
    compare: Path
    multitask: Path
    distill: Path
    fewshot: Path
    imported: Path  # import_backbones' folder: its manifest names each imported backbone's track and dir
    transferability: Path | None = None  # the transferability stage's scores (None: no such section)
    transferability_check: Path | None = None  # the transferability_check stage's τ table and claims


def verdict_rule(params) -> str:
    return ("Claims are judged from paired differences over seeds (both arms see the same data per seed): 'holds' "
            f"needs the {params.evaluate.confidence:.0%} CI of the difference above zero and an effect of at least "
            f"{params.report.min_effect * 100:.1f} pp; 'does not hold' needs it clearly below; anything else is "
            "inconclusive (a claim against a fixed reference compares the CI with that reference). Each claim links "
            "to the section with its figures and tables. In tables, † marks a CI cut to the metric's range (a "
            "t-interval over few seeds can run past 0 or 100 %), and – a cell with nothing measured.")


def build_report(params, inputs: ReportInputs) -> Document:
    """The whole document, sections in the order of metrics/claims.json: vision, learning-curve extrapolation,
    audio, pipeline vs end-to-end, multi-task, distillation, few-shot; transferability after the extrapolation
    section when its inputs are given."""
    from transferlab.data.prepared import load_prepared

    target = load_prepared(inputs.target)
    imported = read_json(Path(inputs.imported) / "manifest.json")
    cards = {name: read_json(Path(path) / "card.json") for name, path in inputs.backbones.items()}
    cards.update({name: read_json(Path(e["dir"]) / "card.json") for name, e in imported.items()
                  if e["track"] == "vision"})
    doc = Document(params.report.title, intro=verdict_rule(params))
    vision_section(doc, inputs.evaluation, inputs.confusion, read_json(inputs.validation), cards,
                   list(target.classes), len(target.rows("test")), seeds=params.finetune.seeds,
                   focus_per_class=params.evaluate.focus_per_class)
    # Right after vision: its claim is the evaluation stage's last, so the document keeps the stages' claim order.
    extrapolation_section(doc, Path(inputs.evaluation))
    if inputs.transferability is not None and inputs.transferability_check is not None:
        transferability_section(doc, Path(inputs.transferability), Path(inputs.transferability_check),
                                params.finetune.ablation_strategy)
    audio_section(doc, inputs.audio_evaluation, params.audio.evaluate,
                  read_json(Path(inputs.audio_backbone) / "card.json"), read_json(inputs.audio_validation),
                  params.audio.prepare.target.wake_word,
                  {name: read_json(Path(e["dir"]) / "card.json") for name, e in imported.items()
                   if e["track"] == "audio"})
    compare_section(doc, inputs.compare)
    confidence, min_effect = params.evaluate.confidence, params.report.min_effect
    multitask_section(doc, inputs.multitask, params.multitask.metric, params.multitask.few_labels_task, confidence,
                      min_effect)
    distill_section(doc, inputs.distill, confidence, min_effect)
    fewshot_section(doc, inputs.fewshot, pd.read_csv(inputs.evaluation / "runs.csv"), confidence, min_effect)
    return doc
