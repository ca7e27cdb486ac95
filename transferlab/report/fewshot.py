"""Report section: few-shot learning by meta-learning (prototypical network vs pre-trained features and
fine-tuning) — reads the fewshot stage's tables, and judges its claims here from its episodes and pools against
the fine-tuning runs."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from transferlab.experiments.fewshot.summary import fewshot_claims
from transferlab.report.document import Document, ci_cell


def fewshot_section(doc: Document, result_dir: Path, finetune_runs: pd.DataFrame, confidence: float,
                    min_effect: float) -> None:
    table = pd.read_csv(result_dir / "episode_summary.csv")
    versus = pd.read_csv(result_dir / "versus_finetuning.csv")
    claims = fewshot_claims(pd.read_csv(result_dir / "episodes.csv"), pd.read_csv(result_dir / "pools.csv"),
                            finetune_runs, confidence, min_effect)
    doc.section("fewshot", "Few-shot learning by meta-learning", claims)
    doc.para("A prototypical network is trained on episodes of the source classes only and classifies target classes "
             "it never saw by the nearest class mean of K support examples. 'pretrained' uses the same rule on the "
             "supervised pre-trained backbone's features. Episodes are drawn from the target test split; both "
             "methods see the same episodes.")
    doc.table(pd.DataFrame([{"episodes": f"{r.shots}-shot", "method": r.method, "n": r.episodes,
                             "mean accuracy (%)": ci_cell(r.accuracy, r.accuracy_low, r.accuracy_high)}
                            for r in table.itertuples()]))
    if not versus.empty:
        doc.para("All classes at once, K labelled examples per class: the fine-tuning runs' own pools and test set "
                 "(mean over the same draws).")
        doc.table(versus.assign(accuracy=(versus["accuracy"] * 100).round(1)).rename(
            columns={"per_class": "K per class", "accuracy": "accuracy (%)"}))
