"""DVC stage: the wake-word ceiling — full fine-tuning of the pre-trained backbone on plentiful positives spoken
by B-train voices (params audio.ceiling), scored on the prepared test set; audio_evaluate judges the sweep
against it."""
from __future__ import annotations

import json
from pathlib import Path

from stages._common import stage_main
from transferlab.experiments.wakeword.ceiling import CEILING_FILE, ceiling_detector
from transferlab.data.prepared import load_prepared
from transferlab.system.io import atomic_dir, write_json
from transferlab.params import Params
from transferlab.system.context import Runtime


def run(params: Params, args, runtime: Runtime) -> dict:
    audio = params.audio
    result = ceiling_detector(audio.prepare, audio.finetune, audio.ceiling, load_prepared(args.target),
                              Path(args.backbone), audio.evaluate.far_targets, audio.evaluate.threshold, runtime)
    with atomic_dir(args.out) as out:
        write_json(out / CEILING_FILE, result)
    print(json.dumps(result))
    return result


def main(argv=None) -> None:
    stage_main(__doc__, {"target": "prepared audio B", "backbone": "pre-trained audio model dir",
                         "out": "ceiling results dir"}, run, argv)


if __name__ == "__main__":
    main()
