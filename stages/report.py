"""DVC stage: the HTML + Markdown report (contents, one claims table, a section per experiment) from what the
experiment stages wrote, every claim's verdict, and the summary DVC shows as metrics."""
from __future__ import annotations

from pathlib import Path

from stages._common import own_backbones, stage_main
from transferlab.analysis.claims import write_claims
from transferlab.system.io import atomic_dir, read_json, write_json
from transferlab.params import Params
from transferlab.report import ReportInputs, build_report, experiment_of
from transferlab.report.summary import summary


def run(params: Params, args):
    inputs = ReportInputs(**{name: Path(getattr(args, name)) for name in (
        "evaluation", "confusion", "validation", "target", "audio_evaluation", "audio_validation", "audio_backbone",
        "compare", "multitask", "distill", "fewshot", "imported", "transferability", "transferability_check")},
        backbones=own_backbones(params, args.backbone, args.curve))
    doc = build_report(params, inputs)
    with atomic_dir(args.out) as out:
        doc.write(out)
    claims = doc.claims()
    write_claims(args.claims, claims, [experiment_of(section) for section, _ in doc.claim_rows()])
    write_json(args.summary, summary(*(read_json(getattr(args, k)) for k in ("evaluate_metrics", "audio_metrics",
                                                                         "transferability_metrics")), claims))
    print(f"report: {Path(args.out) / 'report.html'}")
    for c in claims:
        print(f"  [{c.verdict}] {c.statement} — {c.evidence}")


def main(argv=None) -> None:
    stage_main(__doc__, {"evaluation": "evaluation dir", "confusion": "confusion CSV", "validation": "GX result",
                         "backbone": "NAME=DIR of a pre-trained model (repeat)", "target": "prepared B",
                         "curve": "the source-size curve's backbones and the control (stage pretrain_curve)",
                         "audio_evaluation": "audio evaluation dir", "audio_validation": "audio GX result",
                         "audio_backbone": "pre-trained audio model dir", "compare": "pipeline-vs-e2e dir",
                         "multitask": "multi-task results dir", "distill": "distillation results dir",
                         "fewshot": "few-shot results dir", "imported": "import_backbones' folder",
                         "transferability": "transferability scores dir",
                         "transferability_check": "scores-vs-sweep check dir",
                         "evaluate_metrics": "metrics/evaluate.json", "audio_metrics": "metrics/audio.json",
                         "transferability_metrics": "metrics/transferability.json",
                         "out": "report dir", "claims": "claims JSON",
                         "summary": "the few numbers DVC shows as metrics (transferlab/report/summary.py)"}, run, argv,
               repeated=("backbone",), optional=("curve",))


if __name__ == "__main__":
    main()
