"""DVC stage: import every backbone pre-trained elsewhere (params `backbones:`) as a pre-trained model dir, the
same artifact stages.pretrain writes (model.safetensors + card.json), so every later stage takes it.

    python -m stages.import_backbones --weights data/weights.json --out models/imported [--params params.yaml]

Writes models/imported/<name>/ per entry and models/imported/manifest.json (name → track, kind, dir, the
weights file and its md5), which the fine-tuning stages read to add each backbone to their track's sweep.
--weights is data_roots' hash of every entry's weights file: it is this stage's dependency, so a changed file
re-imports. Nothing declared: an empty manifest. Exit 2 with one line naming the file and the fix (e.g. the
exact path expected offline); no output then, for any entry."""
from __future__ import annotations

import json
from pathlib import Path

from stages._common import stage_main
from transferlab.models.artifacts import save_model
from transferlab.system.io import atomic_dir, write_json
from transferlab.params import Params
from transferlab.models.pretrained import import_backbone

MANIFEST = "manifest.json"


def run(params: Params, args) -> dict:
    shapes = {"image_size": params.prepare.image_size, "channels": params.prepare.channels,
              "sample_rate": params.audio.prepare.sample_rate, "clip_seconds": params.audio.prepare.clip_seconds}
    manifest: dict[str, dict] = {}
    with atomic_dir(args.out) as out:  # one failure leaves no output at all, not some of the backbones
        for entry in params.backbones:
            model, card = import_backbone(entry, **shapes)
            save_model(out / entry.name, model, card)
            manifest[entry.name] = {"track": entry.track, "kind": entry.kind, "dir": (Path(args.out) / entry.name)
                                    .as_posix(), "weights": card["imported"]["file"], "md5": card["imported"]["md5"]}
            print(json.dumps({"name": entry.name, **card["imported"], **card["metrics"]}))
        write_json(out / MANIFEST, manifest)
    return manifest


def main(argv=None) -> None:
    stage_main(__doc__, {"weights": "data_roots' manifest of weights files (dependency only)",
                         "out": "folder of imported model dirs"}, run, argv)


if __name__ == "__main__":
    main()
