"""Transferability on the smoke project: every candidate scored, the check's τ per pool size, and advise."""
from __future__ import annotations

import json

import pandas as pd
from typer.testing import CliRunner


def _advise(*args):
    from transferlab.cli import app

    return CliRunner().invoke(app, ["advise", *map(str, args)], env={"COLUMNS": "200"})


def test_smoke_pipeline_scores_checks_and_advises(smoke_repo):
    scores = pd.read_csv(smoke_repo / "results" / "transferability" / "scores.csv")
    # Our own backbones, the source-size curve's and its control, and the random-init candidate.
    assert {"src-full", "src-100", "src-400", "permuted", "random"} <= set(scores["backbone"])
    taus = pd.read_csv(smoke_repo / "results" / "transferability_check" / "tau.csv")
    assert set(taus["per_class"]) == {1, 5} and (taus["backbones"] == 5).all()
    everything = json.loads((smoke_repo / "metrics" / "claims.json").read_text())
    control = sum(c["key"].endswith("_control_last") for c in everything)
    assert control == taus["score"].nunique()  # one per score: does it rank the permuted-pixel control last?
    assert sum(c["key"].startswith("transferability_") for c in everything) == len(taus) + control
    result = _advise("--repo", smoke_repo)
    assert result.exit_code == 0 and "Backbones ranked by logme" in result.output, result.output
    assert "Recommendation: backbone" in result.output and "Next: transferlab predict models/finetuned/" in result.output
    assert json.loads(_advise("--repo", smoke_repo, "--json").output)["recommendation_source"].startswith("sweep")
    # Changed params make the sweep stale: advise refuses, naming the stage and the command (then restored).
    params = smoke_repo / "params.yaml"
    original = params.read_text()
    try:
        params.write_text(original.replace("max_steps: 20", "max_steps: 21", 1))
        stale = _advise("--repo", smoke_repo)
        assert stale.exit_code == 2 and "stale" in stale.output and "finetune" in stale.output, stale.output
        assert "run `dvc repro transferability_check evaluate` first" in " ".join(stale.output.split())
    finally:
        params.write_text(original)
