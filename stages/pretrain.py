"""DVC stage: pre-train backbone + head on a source task A (resumable; dvclive metrics).

--variant src-full: the vision source; src-<n>: its first n images (a point of the source-size curve); permuted: the
whole source with every image's pixels permuted by one fixed permutation (the control); audio: the spoken words."""
from __future__ import annotations

import json
from pathlib import Path

from stages._common import StageError, require_validated, stage_main
from transferlab.models.preprocessing import audio_preprocessing, image_preprocessing
from transferlab.data.prepared import load_prepared
from transferlab.system.io import atomic_dir, write_json
from transferlab.params import CONTROL_BACKBONE, CURVE_PREFIX, WHOLE_SOURCE, Params, TrainingParams, curve_backbones
from transferlab.experiments.pretraining.source import SourceVariant, pretrain
from transferlab.system.context import Runtime


def recipe_for(params: Params, variant: str) -> tuple[TrainingParams, dict, SourceVariant]:
    """(training params, preprocessing, which source rows and pixels) of a variant."""
    image = image_preprocessing(params.prepare.image_size, params.prepare.channels)
    vision = params.pretrain
    if variant == WHOLE_SOURCE:
        return vision, image, SourceVariant()
    if variant == CONTROL_BACKBONE:
        return vision, image, SourceVariant(permute_pixels=True)
    if variant in curve_backbones(vision.source_sizes):
        return vision, image, SourceVariant(max_images=int(variant.removeprefix(CURVE_PREFIX)), min_steps=vision.min_steps)
    if variant == "audio":
        a = params.audio.prepare
        return (params.audio.pretrain, audio_preprocessing(a.sample_rate, int(round(a.sample_rate * a.clip_seconds))),
                SourceVariant())
    raise StageError(f"--variant must be {WHOLE_SOURCE}, audio or one of {', '.join(curve_backbones(vision.source_sizes))} "
                     f"(pretrain.source_sizes), got {variant!r}")


def run(params: Params, args, runtime: Runtime) -> dict:
    require_validated(args.validation, "train")
    cfg, preprocessing, variant = recipe_for(params, args.variant)
    source = load_prepared(args.source)
    with atomic_dir(args.out) as out:
        metrics = pretrain(cfg, source, Path(args.source), out, Path(args.checkpoints), Path(args.live), runtime,
                           preprocessing, variant)
    write_json(args.metrics, metrics)
    print(json.dumps(metrics))
    return metrics


def main(argv=None) -> None:
    stage_main(__doc__, {"variant": "src-full | src-<n> | permuted | audio", "source": "prepared A",
                         "validation": "validation result JSON", "out": "model dir", "checkpoints": "resume dir",
                         "live": "dvclive dir", "metrics": "metrics JSON"}, run, argv)


if __name__ == "__main__":
    main()
