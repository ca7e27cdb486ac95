"""Transferability in the pipeline (issue 17): the scores stage on tiny data, Kendall's τ with its bootstrap CI
and the claims judged from it, the report section, and `transferlab advise` on prepared and empty workspaces."""
from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from transferlab.models.artifacts import make_card, save_model
from transferlab.models.preprocessing import image_preprocessing
from transferlab.analysis.claims import FAILS, HOLDS, INCONCLUSIVE, read_claims
from transferlab.data.prepared import write_prepared
from transferlab.models import create_model
from transferlab.experiments.transferability.rankcheck import join_scores, measured, rank_claims, tau_table, unjudged_sizes

from ..conftest import ROOT, tiny_digits

KWARGS = {"widths": [4, 8, 8]}
SMOKE = str(ROOT / "profiles" / "smoke.yaml")  # pools [1, 5], 2 draws, 2 seeds: tiny_digits has those pools


def _backbone(path, seed, classes=26):
    torch.manual_seed(seed)
    save_model(path, create_model("convnet_small", num_classes=classes, **KWARGS),
               make_card(architecture={"name": "convnet_small", "kwargs": KWARGS},
                         classes=[f"c{i}" for i in range(classes)], preprocessing=image_preprocessing(28, 1)))
    return path


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """The stage run on tiny digits with our two backbones and one imported one; extraction calls counted."""
    from transferlab.experiments.transferability import candidates as scoring
    from stages.transferability import main

    root = tmp_path_factory.mktemp("scores")
    data = tiny_digits()
    write_prepared(root / "target", data.samples.numpy(), data.labels.numpy(), data.classes, data.metadata,
                   data.pools)
    _backbone(root / "src-full", 1), _backbone(root / "small", 2), _backbone(root / "imported" / "imp", 3, classes=5)
    (root / "imported" / "manifest.json").write_text(json.dumps(
        {"imp": {"dir": str(root / "imported" / "imp"), "track": "vision"},
         "speech": {"dir": str(root / "nowhere"), "track": "audio"}}))
    calls = []
    original = scoring.extract_features
    scoring.extract_features = lambda model, samples, *a, **k: calls.append(len(samples)) or original(
        model, samples, *a, **k)
    try:
        main(["--params", SMOKE, "--backbone", f"src-full={root / 'src-full'}", "--backbone", f"small={root / 'small'}",
              "--imported", str(root / "imported"), "--target", str(root / "target"), "--out", str(root / "out")])
    finally:
        scoring.extract_features = original
    return root, data, calls


def test_stage_scores_every_candidate_at_every_pool_and_the_main_backbones_layer_cuts(scored):
    root, data, calls = scored
    scores = pd.read_csv(root / "out" / "scores.csv")
    timing = pd.read_csv(root / "out" / "timing.csv")
    assert list(timing["backbone"]) == ["src-full", "small", "imp", "random"]  # main first; audio imports left out
    body = scores[scores["cut"] == "body"]
    assert len(body) == 4 * 2 * 2 and set(body["per_class"]) == {1, 5} and set(body["draw"]) == {0, 1}
    assert (body["images"] == body["per_class"] * 10).all()
    assert body[["logme", "leep", "nce", "h_score"]].notna().all().all()  # random: its untrained head
    cuts = scores[scores["cut"] != "body"]
    assert set(cuts["backbone"]) == {"src-full"} and sorted(cuts["cut"].unique()) == ["block1", "block2", "block3"]
    assert cuts[["leep", "nce"]].isna().all().all() and cuts["note"].str.contains("source head").all()
    # The last block pooled by its mean is the pre-logits feature: the hook caught the right tensor.
    last = cuts[cuts["cut"] == "block3"].set_index(["per_class", "draw"])["logme"]
    assert np.allclose(last, body[body["backbone"] == "src-full"].set_index(["per_class", "draw"])["logme"])
    # Features once per image: one pass per candidate over the union of the pools (every 5/class pool).
    union = np.unique(np.concatenate([data.pool(d, n) for n in (1, 5) for d in (0, 1)]))
    assert calls == [len(union)] * 4
    assert (timing["images"] == len(union)).all() and (timing["seconds"] > 0).all()


def _table(order_by_seed, names=("a", "b", "c", "d")):
    """joined rows: in seed s the score of backbone i is order_by_seed[s][i]; accuracy rises with i."""
    return pd.DataFrame([{"backbone": b, "per_class": 5, "seed": s, "logme": float(order[i]), "accuracy": 0.5 + 0.1 * i}
                         for s, order in enumerate(order_by_seed) for i, b in enumerate(names)])


def test_tau_and_its_bootstrap_ci_on_tables_with_known_answers():
    same = tau_table(_table([[0, 1, 2, 3]] * 3), ["logme"], 200, 0.95).iloc[0]
    assert (same["tau"], same["low"], same["high"]) == (1.0, 1.0, 1.0) and same["backbones"] == 4
    assert same["order_score"] == same["order_accuracy"] == "d > c > b > a"
    reverse = tau_table(_table([[3, 2, 1, 0]] * 3), ["logme"], 200, 0.95).iloc[0]
    assert (reverse["tau"], reverse["high"]) == (-1.0, -1.0)
    # Seeds disagree (two agree, one reverses strongly): the mean order is right, but resamples that draw the
    # reversing seed twice reverse it, so the CI spans 0.
    mixed = tau_table(_table([[0, 1, 2, 3], [3.5, 2.5, 1.5, 0.5], [0, 1, 2, 3]]), ["logme"], 400, 0.95).iloc[0]
    assert mixed["tau"] == 1.0 and mixed["low"] < 0 < mixed["high"]
    few = tau_table(_table([[0, 1]] * 3, names=("a", "b")), ["logme"], 50, 0.95).iloc[0]
    assert few["backbones"] == 2 and np.isnan(few["tau"])
    two_seeds = tau_table(_table([[0, 1, 2, 3]] * 2), ["logme"], 200, 0.95).iloc[0]  # agree: CI [1, 1] anyway
    table = pd.DataFrame([same, reverse, mixed, few, two_seeds])
    claims = rank_claims(table, "src-full", 0.95)
    # Two backbones cannot be ranked by design: no claim row (the report says once which sizes), not "inconclusive".
    assert [c.verdict for c in claims] == [HOLDS, FAILS, INCONCLUSIVE, INCONCLUSIVE]
    assert unjudged_sizes(table.assign(per_class=[5, 5, 5, 1, 5])) == [1]
    assert "2 seeds are too few" in claims[3].evidence
    assert claims[0].statement.startswith("The transferability score LogME ranks backbones as fine-tuning does")


def test_the_random_candidate_is_the_scratch_run_only_when_the_ablation_is_full():
    runs = pd.DataFrame([{"backbone": b, "strategy": s, "per_class": 1, "seed": 0, "test_accuracy": acc}
                         for b, s, acc in (("src-full", "scratch", 0.2), ("src-full", "full", 0.6), ("src-full", "head", 0.5),
                                           ("small", "full", 0.4))])
    got = measured(runs, "src-full", "full").set_index("backbone")["accuracy"].to_dict()
    assert got == {"src-full": 0.6, "small": 0.4, "random": 0.2}
    assert set(measured(runs, "src-full", "head")["backbone"]) == {"src-full"}
    scores = pd.DataFrame([{"backbone": b, "cut": c, "per_class": 1, "draw": 0, "logme": 1.0}
                           for b in ("src-full", "small", "random") for c in ("body", "block1")])
    joined = join_scores(scores, measured(runs, "src-full", "full"), ["logme"])
    assert sorted(joined["backbone"]) == ["random", "small", "src-full"] and len(joined) == 3


def _workspace(root, scores=True, sweep=False, backbone=True):
    """A project folder as the pipeline leaves it (dvc.yaml, no dvc.lock: paths from dvc.yaml's commands)."""
    root.mkdir(parents=True)
    shutil.copy2(ROOT / "dvc.yaml", root / "dvc.yaml")
    if backbone:
        _backbone(root / "models" / "pretrained" / "src-full", 0)
    if scores:
        out = root / "results" / "transferability"
        out.mkdir(parents=True)
        rows = [{"backbone": b, "cut": "body", "per_class": n, "draw": d, "logme": v + 0.01 * d, "leep": -v,
                 "nce": -1.0, "h_score": v} for n in (1, 5, 10) for d in (0, 1)
                for b, v in (("src-full", 0.3), ("small", 0.2), ("random", 0.1))]
        pd.DataFrame(rows).to_csv(out / "scores.csv", index=False)
    if sweep:
        out = root / "results" / "evaluation"
        out.mkdir(parents=True)
        # error = 0.25·n^-0.5 + 0.015, seeds ± a little: 97% (error 0.03) at n = (0.25/0.015)² ≈ 278, 99% never
        runs = pd.DataFrame([{"backbone": "src-full", "strategy": "full", "per_class": n, "seed": s,
                              "accuracy": 1 - (0.25 * n ** -0.5 + 0.015 + 0.002 * (s - 1))}
                             for n in (1, 5, 10, 50) for s in range(3)])
        runs.to_csv(out / "runs.csv", index=False)
        curves = runs.groupby(["backbone", "strategy", "per_class"])["accuracy"].mean().reset_index()
        curves.assign(accuracy_low=curves["accuracy"] - 0.01, accuracy_high=curves["accuracy"] + 0.01).to_csv(
            out / "curves.csv", index=False)
    return root


def _advise(*args):
    from transferlab.cli import app

    return CliRunner().invoke(app, ["advise", *map(str, args)], env={"COLUMNS": "200"})


def test_advise_ranks_the_backbones_and_says_where_the_strategy_came_from(tmp_path):
    root = _workspace(tmp_path / "ws")
    result = _advise("--repo", root)
    assert result.exit_code == 0, result.output
    assert "src-full > small > random" in result.output and "transferability scores" in result.output
    data = json.loads(_advise("--repo", root, "--json").output)
    assert [r["backbone"] for r in data["ranking"]] == ["src-full", "small", "random"] and data["per_class"] == 10
    assert {r["source"] for r in data["recommendations"]} == {"scores"}
    assert data["recommendations"][0]["strategy"] == "head"
    assert _advise("--repo", root, "--target-accuracy", 0.97).exit_code == 1  # no sweep to extrapolate


def test_advise_with_the_sweep_recommends_measured_strategies_and_extrapolates_labels(tmp_path):
    root = _workspace(tmp_path / "ws", sweep=True)
    data = json.loads(_advise("--repo", root, "--json", "--target-accuracy", 0.97).output)
    assert data["recommendation_source"].startswith("sweep") and data["recommendations"][-1]["per_class"] == 50
    need = data["labels_needed"][0]
    assert need["reachable"] and 150 < need["estimate"] < 450 and need["low"] <= need["estimate"] <= need["high"]
    far = json.loads(_advise("--repo", root, "--json", "--target-accuracy", 0.99).output)["labels_needed"][0]
    assert far["reachable"] is False and far["estimate"] is None and "not reachable" in far["message"]
    result = _advise("--repo", root, "--target-accuracy", 0.99)
    assert result.exit_code == 0 and "not reachable" in result.output
    # It ends with one answer: the measured best at the largest pool, the labels 97 % needs (the fit supports it:
    # interval within 3× and the estimate within 10× of 50/class), and a command to run.
    answer = data["answer"]
    assert (answer["backbone"], answer["strategy"], answer["per_class"]) == ("src-full", "full", 50)
    assert need["supported"] and answer["labels"] == need["estimate"] and answer["labels_strategy"] == "full"
    assert answer["command"].startswith("dvc exp run -S finetune.main_backbone=src-full")  # no saved model here
    text = _advise("--repo", root, "--target-accuracy", 0.97).output
    assert "Recommendation: backbone src-full, strategy full" in text and "Next: dvc exp run" in text
    assert re.search(r"about \d{3} labels per class with full", text)
    unreachable = json.loads(_advise("--repo", root, "--json", "--target-accuracy", 0.99).output)["answer"]
    assert unreachable["labels"] is None and unreachable["label_next"] == 100
    assert "label 100 per class next" in result.output


def test_a_label_count_the_measured_sizes_cannot_support_is_not_given_and_numbers_are_rounded():
    from transferlab.ops.advise import rounded, support

    row = {"estimate": 31561.0, "low": 18086.0, "high": 30266065.0, "message": "ok"}
    assert support(row, 300) == {"supported": False, "why": "its 95 % interval (19,000–3e7) spans more than 3× "
                                                            "the estimate either way"}
    near = {"estimate": 2000.0, "low": 1500.0, "high": 2600.0, "message": "ok"}
    assert support(near, 300)["supported"] is True
    assert "over 10× the largest pool measured (100/class)" in support(near, 100)["why"]
    assert [rounded(v) for v in (3.2, 625, 31561, 2950376, None)] == ["4", "630", "32,000", "3,000,000", "∞"]


def test_advise_names_what_is_missing(tmp_path):
    bare = _advise("--repo", _workspace(tmp_path / "bare", scores=False, backbone=False))
    assert bare.exit_code == 2 and "no backbone" in bare.output and "models/pretrained/src-full" in bare.output
    unscored = _advise("--repo", _workspace(tmp_path / "unscored", scores=False))
    assert unscored.exit_code == 2
    assert "results/transferability/scores.csv not found: run `dvc repro transferability`" in unscored.output
    (tmp_path / "empty").mkdir()
    assert _advise("--repo", tmp_path / "empty").exit_code == 2


def test_report_section_shows_tau_the_scatter_and_the_layer_cuts(scored, tmp_path):
    from stages.transferability_check import main
    from transferlab.report.document import Document
    from transferlab.report.transferability import transferability_section

    root, _, _ = scored
    runs = pd.DataFrame([{"backbone": b, "strategy": s, "per_class": n, "seed": seed,
                          "test_accuracy": acc + 0.01 * seed}
                         for n in (1, 5) for seed in (0, 1)
                         for b, s, acc in (("src-full", "full", 0.6), ("src-full", "scratch", 0.2), ("small", "full", 0.4),
                                           ("imp", "full", 0.5))])
    (tmp_path / "finetune").mkdir()
    runs.to_csv(tmp_path / "finetune" / "runs.csv", index=False)
    main(["--params", SMOKE, "--scores", str(root / "out"), "--finetune", str(tmp_path / "finetune"),
          "--out", str(tmp_path / "check"), "--metrics", str(tmp_path / "metrics.json")])
    claims = read_claims(tmp_path / "check" / "claims.json")
    assert len(claims) == 4 * 2 and all(c.verdict in (HOLDS, FAILS, INCONCLUSIVE) for c in claims)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics) == {"n1", "n5", "seconds"} and set(metrics["seconds"]) == {"src-full", "small", "imp", "random"}
    doc = Document("r")
    transferability_section(doc, root / "out", tmp_path / "check", "src-full")
    md = doc.markdown("figures")
    assert "transferability_vs_accuracy" in md and "layer_cuts_logme" in md and "Kendall τ" in md
    assert [c.key for c in doc.claims()] == [c.key for c in claims]


def test_logme_on_a_large_pool_takes_the_gram_route_to_the_same_singular_subspace():
    from transferlab.experiments.transferability.scores import _left_singular

    rng = np.random.default_rng(0)
    f = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 16))  # tall and rank 6 of 16: the route pools of 3000 take
    s2, u = _left_singular(f)
    ref_u, ref_s, _ = np.linalg.svd(f, full_matrices=False)
    assert len(s2) == 6 and np.allclose(np.sort(s2), np.sort(ref_s[:6] ** 2))
    assert np.allclose(u @ u.T, ref_u[:, :6] @ ref_u[:, :6].T, atol=1e-8)  # the same projector onto span(F)
