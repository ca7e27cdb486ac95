"""DVC stage: build the audio source A (spoken words) and target B (wake word), held-out voices, pools."""
from __future__ import annotations

from stages._common import StageError, stage_main
from transferlab.data.audio.build import prepare_audio
from transferlab.data.sizes import size_problems
from transferlab.system.io import atomic_dir, write_json
from transferlab.params import Params
from transferlab.system.context import Runtime


def run(params: Params, args, runtime: Runtime) -> dict:
    short = size_problems(params, tracks=("audio",))  # before anything is synthesised or written
    if short:
        raise StageError("; ".join(short))
    with atomic_dir(args.source) as source_tmp, atomic_dir(args.target) as target_tmp:
        summary = prepare_audio(params.audio.prepare, source_tmp, target_tmp, runtime)
    write_json(args.metrics, summary)
    return summary


def main(argv=None) -> None:
    stage_main(__doc__, {"source": "output dir for audio A", "target": "output dir for audio B",
                         "metrics": "summary JSON"}, run, argv)


if __name__ == "__main__":
    main()
