"""DVC stage: the HTML + Markdown report with learning curves, tables and the claims table."""
from __future__ import annotations

from pathlib import Path

from stages._common import stage_main
from transferlab.audio.report import audio_section, compare_section
from transferlab.data.prepared import load_prepared
from transferlab.forms_report import distill_section, fewshot_section, multitask_section
from transferlab.io import atomic_dir, read_json, write_json
from transferlab.params import Params
from transferlab.reporting import build_report


def run(params: Params, args):
    from stages.finetune import parse_backbones

    cards = {name: read_json(path / "card.json") for name, path in parse_backbones(args.backbone).items()}
    target = load_prepared(args.target)
    doc, claims = build_report(params, Path(args.evaluation), Path(args.confusion), read_json(args.validation),
                               cards, len(target.classes), target.classes, len(target.rows("test")))
    claims += audio_section(doc, Path(args.audio_evaluation), params.audio.evaluate,
                            read_json(Path(args.audio_backbone) / "card.json"), read_json(args.audio_validation),
                            params.audio.prepare.target.wake_word, params.evaluate.confidence, params.report.min_effect)
    claims += compare_section(doc, Path(args.compare))
    claims += multitask_section(doc, Path(args.multitask), params.multitask.metric, params.multitask.few_labels_task)
    claims += distill_section(doc, Path(args.distill))
    claims += fewshot_section(doc, Path(args.fewshot))
    with atomic_dir(args.out) as out:
        doc.write(out)
    write_json(args.claims, [c.as_dict() for c in claims])
    print(f"report: {Path(args.out) / 'report.html'}")
    for c in claims:
        print(f"  [{c.verdict}] {c.statement} — {c.evidence}")


def main(argv=None) -> None:
    stage_main(__doc__, {"evaluation": "evaluation dir", "confusion": "confusion CSV", "validation": "GX result",
                         "backbone": "NAME=DIR of a pre-trained model (repeat)", "target": "prepared B",
                         "audio_evaluation": "audio evaluation dir", "audio_validation": "audio GX result",
                         "audio_backbone": "pre-trained audio model dir", "compare": "pipeline-vs-e2e dir",
                         "multitask": "multi-task results dir", "distill": "distillation results dir",
                         "fewshot": "few-shot results dir",
                         "out": "report dir", "claims": "claims JSON (metrics)"}, run, argv, repeated=("backbone",))


if __name__ == "__main__":
    main()
