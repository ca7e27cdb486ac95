"""DVC stage: import a backbone pre-trained elsewhere (an entry of params `backbones`) as a pre-trained model
dir, the same artifact stages.pretrain writes (model.safetensors + card.json), so every later stage takes it.

    python -m stages.import_backbone --name NAME --out models/pretrained/NAME [--params params.yaml]

NAME picks the entry of `backbones:` in params.yaml, e.g.
    backbones:
      - {name: rn18-imagenet, kind: torchvision, arch: resnet18, weights: IMAGENET1K_V1}
      - {name: my-mnv3, kind: file, arch: mobilenet_v3_small, path: data/weights/mnv3.pth}
kind torchvision reads $TORCH_HOME/hub/checkpoints/<file of the weights' URL> (torchvision downloads it there
when missing and the network allows; set TORCH_HOME inside the repo to make it a DVC dependency); kind file reads
`path` (.safetensors, or .pth/.pt with torch.load(weights_only=True)). The network takes the stored samples
(prepare.image_size, prepare.channels) and applies the weights' own resize/crop/mean/std and grey→RGB itself.
Exit 2 with one line naming the file and the fix (e.g. the exact path expected offline); no output then."""
from __future__ import annotations

import json

from stages._common import StageError, stage_main
from transferlab.artifacts import save_model
from transferlab.io import atomic_dir
from transferlab.params import Params
from transferlab.pretrained import import_backbone


def run(params: Params, args) -> dict:
    entries = {b.name: b for b in params.backbones}
    if args.name not in entries:
        raise StageError(f"--name {args.name!r} is not among params backbones "
                         f"({', '.join(entries) or 'none declared'})")
    # Everything is read and checked before the output dir is opened: a failure leaves nothing behind.
    model, card = import_backbone(entries[args.name], params.prepare.image_size, params.prepare.channels)
    with atomic_dir(args.out) as out:
        save_model(out, model, card)
    print(json.dumps({"name": args.name, **card["imported"], **card["metrics"]}))
    return card


def main(argv=None) -> None:
    stage_main(__doc__, {"name": "entry of params backbones", "out": "model dir"}, run, argv)


if __name__ == "__main__":
    main()
