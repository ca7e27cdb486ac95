"""DVC stage: pre-train backbone + head on the source task A (resumable; dvclive metrics)."""
from __future__ import annotations

import json
from pathlib import Path

from stages._common import StageError, stage_main
from transferlab.data.prepared import load_prepared
from transferlab.io import atomic_dir, read_json, write_json
from transferlab.params import Params
from transferlab.pretrain import pretrain
from transferlab.runtime import configure


def run(params: Params, args) -> dict:
    result = read_json(args.validation)
    if not result.get("success"):
        raise StageError(f"{args.validation}: the data did not pass validation; refusing to train")
    limit = {"full": None, "small": params.pretrain.small_source_size}.get(args.variant, "?")
    if limit == "?":
        raise StageError(f"--variant must be 'full' or 'small', got {args.variant!r}")
    device = configure(params.runtime.device, params.runtime.threads)
    source = load_prepared(args.source)
    with atomic_dir(args.out) as out:
        metrics = pretrain(params.pretrain, source, Path(args.source), out, Path(args.checkpoints), Path(args.live),
                           device, params.prepare.image_size, params.prepare.channels, max_train_images=limit)
    write_json(args.metrics, metrics)
    print(json.dumps(metrics))
    return metrics


def main(argv=None) -> None:
    stage_main(__doc__, {"variant": "full | small (the source-size ablation)", "source": "prepared A",
                         "validation": "validation result JSON", "out": "model dir", "checkpoints": "resume dir",
                         "live": "dvclive dir", "metrics": "metrics JSON"}, run, argv)


if __name__ == "__main__":
    main()
