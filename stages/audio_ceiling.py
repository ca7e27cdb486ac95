"""DVC stage: the wake-word ceiling — full fine-tuning of the pre-trained backbone on plentiful positives spoken
by B-train voices (params audio.ceiling), scored on the prepared test set and the continuous test streams;
audio_evaluate judges the sweep against it."""
from __future__ import annotations

import json
from pathlib import Path

from stages._common import stage_main
from transferlab.experiments.wakeword.ceiling import CEILING_FILE, ceiling_detector
from transferlab.experiments.wakeword.stream_eval import StreamScorer
from transferlab.data.prepared import load_prepared
from transferlab.system.io import atomic_dir, write_json
from transferlab.params import Params
from transferlab.system.context import Runtime


def run(params: Params, args, runtime: Runtime) -> dict:
    audio = params.audio
    streams = StreamScorer.from_params(audio, args.streams) if args.streams else None
    result = ceiling_detector(audio.prepare, audio.finetune, audio.ceiling, load_prepared(args.target),
                              Path(args.backbone), audio.evaluate.far_targets, audio.evaluate.threshold, runtime,
                              streams, audio.detect.fa_rates)
    with atomic_dir(args.out) as out:
        write_json(out / CEILING_FILE, result)
    print(json.dumps(result))
    return result


def main(argv=None) -> None:
    stage_main(__doc__, {"target": "prepared audio B", "backbone": "pre-trained audio model dir",
                         "out": "ceiling results dir",
                         "streams": "stage audio_streams' folder: the ceiling is scored on it as the sweep is"}, run,
               argv, optional=("streams",))


if __name__ == "__main__":
    main()
