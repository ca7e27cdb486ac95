"""DVC stage: pre-train backbone + head on a source task A (resumable; dvclive metrics).

--variant full|small: the vision source (small is the source-size ablation); audio: the spoken-word source."""
from __future__ import annotations

import json
from pathlib import Path

from stages._common import StageError, require_validated, stage_main
from transferlab.artifacts import audio_preprocessing, image_preprocessing
from transferlab.data.prepared import load_prepared
from transferlab.io import atomic_dir, write_json
from transferlab.params import Params
from transferlab.pretrain import pretrain
from transferlab.runtime import configure


def recipe_for(params: Params, variant: str):
    """(training params, preprocessing, source-size limit) of a variant."""
    image = image_preprocessing(params.prepare.image_size, params.prepare.channels)
    if variant == "full":
        return params.pretrain, image, None
    if variant == "small":
        return params.pretrain, image, params.pretrain.small_source_size
    if variant == "audio":
        a = params.audio.prepare
        return params.audio.pretrain, audio_preprocessing(a.sample_rate, int(round(a.sample_rate * a.clip_seconds))), None
    raise StageError(f"--variant must be 'full', 'small' or 'audio', got {variant!r}")


def run(params: Params, args) -> dict:
    require_validated(args.validation, "train")
    cfg, preprocessing, limit = recipe_for(params, args.variant)
    device = configure(params.runtime.device, params.runtime.threads)
    source = load_prepared(args.source)
    with atomic_dir(args.out) as out:
        metrics = pretrain(cfg, source, Path(args.source), out, Path(args.checkpoints), Path(args.live), device,
                           preprocessing, max_train_images=limit)
    write_json(args.metrics, metrics)
    print(json.dumps(metrics))
    return metrics


def main(argv=None) -> None:
    stage_main(__doc__, {"variant": "full | small | audio", "source": "prepared A",
                         "validation": "validation result JSON", "out": "model dir", "checkpoints": "resume dir",
                         "live": "dvclive dir", "metrics": "metrics JSON"}, run, argv)


if __name__ == "__main__":
    main()
