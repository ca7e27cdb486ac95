"""DVC stage: few-shot learning — a prototypical network meta-trained on source episodes, tested on
N-way K-shot episodes of the never-seen target classes and on the fine-tuning pools at the same K. The report
stage judges the claims from episodes.csv and pools.csv."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from stages._common import publish, stage_main
from transferlab.models.artifacts import load_model, make_card, parent, save_model
from transferlab.models.preprocessing import image_preprocessing
from transferlab.data.prepared import load_prepared
from transferlab.core.engine import predict_logits
from transferlab.experiments.fewshot.episodes import episode_accuracies, pool_accuracies, train_protonet
from transferlab.experiments.fewshot.summary import episode_table, versus_finetuning
from transferlab.system.io import atomic_dir
from transferlab.params import Params
from transferlab.system.context import Runtime


def run(params: Params, args, runtime: Runtime) -> dict:
    cfg = params.fewshot
    source, target = load_prepared(args.source), load_prepared(args.target)
    backbone, backbone_card = load_model(args.backbone)
    protonet = train_protonet(source, cfg, params.prepare.channels, backbone if cfg.init == "pretrained" else None,
                              runtime)
    features = {"protonet": predict_logits(protonet, target.samples, runtime),
                "pretrained": predict_logits(backbone, target.samples, runtime, pre_logits=True)}
    labels, test = target.labels.numpy(), target.rows("test")
    episodes = pd.concat([episode_accuracies(features, labels, test, cfg.ways, k, cfg.queries, cfg.test_episodes,
                                             cfg.seed) for k in cfg.shots], ignore_index=True)
    shots = [k for k in cfg.shots if k in params.prepare.target.pool_sizes]
    pools = pool_accuracies(features, target, shots, params.finetune.seeds)
    finetune_runs = pd.read_csv(Path(args.finetune) / "runs.csv")
    table = episode_table(episodes, params.evaluate.confidence)
    with atomic_dir(args.model) as model_dir:
        save_model(model_dir, protonet, make_card(
            architecture=backbone_card["architecture"] if cfg.init == "pretrained" else
            {"name": cfg.model.name, "kwargs": {"widths": list(cfg.model.widths), "dropout": cfg.model.dropout}},
            classes=[], preprocessing=image_preprocessing(params.prepare.image_size, params.prepare.channels),
            params={"fewshot": cfg.model_dump()}, parents=[parent(args.source, "episodes")]
            + ([parent(args.backbone, "initialisation")] if cfg.init == "pretrained" else []),
            extra={"kind": "prototypical embedding: classify by the nearest class mean of support embeddings"},
            runtime=runtime))
    with atomic_dir(args.out) as out:
        episodes.to_csv(out / "episodes.csv", index=False)
        pools.to_csv(out / "pools.csv", index=False)
        table.to_csv(out / "episode_summary.csv", index=False)
        versus_finetuning(pools, finetune_runs).to_csv(out / "versus_finetuning.csv", index=False)
    metrics = {f"{cfg.ways}way{r.shots}shot/{r.method}": round(r.accuracy, 4) for r in table.itertuples()}
    metrics.update({f"{len(target.classes)}way{k}shot-pools/{m}": round(float(g["accuracy"].mean()), 4)
                    for (k, m), g in pools.groupby(["per_class", "method"])})
    return publish(args.metrics, metrics)


def main(argv=None) -> None:
    stage_main(__doc__, {"source": "prepared source A", "target": "prepared target B",
                         "backbone": "pre-trained backbone dir", "finetune": "fine-tuning results dir",
                         "model": "protonet model dir", "out": "results dir", "metrics": "metrics JSON"}, run, argv)


if __name__ == "__main__":
    main()
