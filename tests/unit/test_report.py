"""The report package: a contents list and one claims table linking to sections; sections only read the
claims.json their stage wrote; docs/results.md from a workspace's outputs."""
from __future__ import annotations

import json
import re
import subprocess
from datetime import datetime, timezone

import pandas as pd
import pytest

from transferlab.analysis.claims import Claim, write_claims
from transferlab.report.document import Document
from transferlab.report.fewshot import fewshot_section
from transferlab.report.results_md import EXPERIMENTS, ResultsError, results_markdown, write_results_md
from transferlab.report.vision import vision_section


def _claim(key: str, verdict: str = "holds") -> Claim:
    return Claim(key, f"statement of {key}", verdict, f"evidence of {key}")


def _fewshot_dir(path):
    """A few-shot stage's outputs whose one claim is a tie: protonet and the pre-trained prototypes score alike."""
    path.mkdir(parents=True)
    pd.DataFrame([{"shots": 1, "method": "protonet", "episodes": 10, "accuracy": 0.5, "accuracy_low": 0.4,
                   "accuracy_high": 0.6}]).to_csv(path / "episode_summary.csv", index=False)
    pd.DataFrame(columns=["per_class", "accuracy"]).to_csv(path / "versus_finetuning.csv", index=False)
    pd.DataFrame([{"shots": 1, "episode": e, "method": m, "accuracy": 0.5 + (0.01 if (e + (m == "protonet")) % 2 else 0)}
                  for e in range(10) for m in ("protonet", "pretrained")]).to_csv(path / "episodes.csv", index=False)
    pd.DataFrame(columns=["per_class", "seed", "method", "accuracy"]).to_csv(path / "pools.csv", index=False)
    return path


def _vision_dir(path, claims):
    """Runs where transfer clearly wins; the claims file says otherwise, and the report must believe the file."""
    path.mkdir(parents=True)
    runs = pd.DataFrame([{"backbone": "full", "strategy": s, "per_class": n, "seed": seed, "train_seconds": 1.0,
                          "accuracy": (0.9 if s == "head" else 0.3) + 0.01 * seed}
                         for s in ("scratch", "head") for n in (1, 10) for seed in range(3)])
    runs.to_csv(path / "runs.csv", index=False)
    curves = runs.groupby(["backbone", "strategy", "per_class"], sort=False)["accuracy"].mean().reset_index()
    for m in ("accuracy", "macro_f1"):
        curves[m] = curves["accuracy"]
        curves[f"{m}_low"], curves[f"{m}_high"] = curves[m] - 0.05, curves[m] + 0.05
    curves.to_csv(path / "curves.csv", index=False)
    write_claims(path / "claims.json", claims)
    return path


def test_document_opens_with_contents_and_one_claims_table_linking_to_sections(tmp_path):
    doc = Document("Transfer report")
    doc.section("first", "First experiment", [_claim("a"), _claim("b", "does not hold")])
    doc.para("text")
    fewshot_section(doc, _fewshot_dir(tmp_path / "fewshot"), pd.DataFrame(columns=["backbone", "per_class"]),
                    confidence=0.95, min_effect=0.01)
    doc.section("empty", "Section without claims", [])
    html = doc.html()
    ids = set(re.findall(r'id="([^"]+)"', html))
    nav = re.search(r'<nav id="contents">(.*?)</nav>', html).group(1)
    assert re.findall(r'href="#([^"]+)"', nav) == ["claims", "first", "fewshot", "empty"]
    table = re.search(r'<h2 id="claims">.*?<table.*?</table>', html, re.S).group(0)
    rows = re.findall(r"<tr><td><a href=\"#([^\"]+)\">([^<]+)</a></td><td><span class=\"v \w+\">([^<]+)</span></td>",
                      table)
    tie = ("Meta-learning (prototypical network on source episodes) beats nearest prototypes on the pre-trained "
           "features, 1-shot")
    assert [(a, s) for a, s, _ in rows] == [("first", "statement of a"), ("first", "statement of b"), ("fewshot", tie)]
    assert all(anchor in ids for anchor, _, _ in rows)
    assert [v for _, _, v in rows] == ["holds", "does not hold", "inconclusive"]
    assert html.count("<table") == 2  # the claims table + the few-shot episodes table; no per-section claims table
    assert [c.key for c in doc.claims()] == ["a", "b", "meta_beats_pretrained_features_k1"]
    counts = "3 claims: 1 holds, 1 does not hold, 1 inconclusive."
    assert f'<p class="counts"><strong>{counts}</strong></p><table class="tbl claims">' in html
    assert f"## Claims and verdicts\n\n**{counts}**\n\n| claim |" in doc.markdown("figures")
    md = doc.markdown("figures")
    md_ids = set(re.findall(r'<a id="([^"]+)"></a>', md))
    assert {"contents", "claims", "first", "fewshot", "empty"} <= md_ids
    assert f"[{tie}](#fewshot) | ➖ inconclusive | protonet − pretrained-prototypes: " in md
    assert all(target in md_ids for target in re.findall(r"\]\(#([^)]+)\)", md))
    with pytest.raises(ValueError, match="duplicate"):
        doc.section("first", "again", [])


def test_a_section_shows_the_verdict_its_stage_wrote_not_one_it_judges(tmp_path):
    evaluation = _vision_dir(tmp_path / "evaluation", [_claim("transfer_helps_small_data", "does not hold")])
    doc = Document("r")
    card = {"classes": ["x"] * 5, "metrics": {"train_images": 100, "val_accuracy": 0.9, "parameters": 10}}
    vision_section(doc, evaluation, tmp_path / "no-confusion.csv", {"success": True, "tables": {}}, {"full": card},
                   ["0", "1"], 20, seeds=3, focus_per_class=10)
    assert [(c.key, c.verdict) for c in doc.claims()] == [("transfer_helps_small_data", "does not hold")]
    assert '<span class="v fails">does not hold</span>' in doc.html() and "statement of transfer_helps_small_data" in doc.markdown("f")


def _workspace(root, claims_by_dir):
    """A tiny project: params.yaml, each experiment's metrics file and claims.json, metrics/claims.json."""
    (root / "metrics").mkdir(parents=True)
    (root / "params.yaml").write_text("report:\n  min_effect: 0.01\n")
    metrics = {
        "metrics/evaluate.json": {"n1": {"scratch": 0.4, "head": 0.7, "best_transfer": "head",
                                         "best_transfer_accuracy": 0.7, "gain_vs_scratch": 0.3},
                                  "ablation_src-300": {"n1": 0.35},
                                  "source_curve": {"n1": {
                                      "permuted": {"source_images": 900, "control": True, "gain": -0.01,
                                                   "gain_low": -0.03, "gain_high": 0.01},
                                      "src-300": {"source_images": 300, "control": False, "gain": 0.02,
                                                 "gain_low": 0.01, "gain_high": 0.03}}},
                                  "holdout": {"full": {"per_class": 300, "predicted": 0.961, "low": 0.94,
                                                       "high": 0.968, "measured": 0.98, "inside": False}}},
        "metrics/transferability.json": {"n1": {"logme": {"tau": 0.33, "low": -0.33, "high": 1.0}},
                                         "seconds": {"full": 1.5}},
        "metrics/audio.json": {"pos5": {"scratch": {"auroc": 0.5, "frr_at_far1": 0.9},
                                        "head": {"auroc": 0.8, "frr_at_far1": 0.6}, "best_transfer": "head"}},
        "metrics/compare.json": {"vision": {"crossover_size": 2660, "pipeline_n100": 0.38, "endtoend_n100": 0.30}},
        "metrics/multitask.json": {"width/shared/w2-4-8/m0": {"auroc": 0.75, "ap": 0.6}},
        "metrics/distill.json": {"teacher": "t", "teacher_accuracy": 0.98, "teacher_params": 1000,
                                 "teacher_latency_ms": 12.0, "latency_batch": 256, "student_params": 10,
                                 "student_latency_ms": 1.0, "distilled/n5": 0.51, "hard/n5": 0.41},
        "metrics/fewshot.json": {"5way1shot/protonet": 0.78},
    }
    for rel, data in metrics.items():
        (root / rel).write_text(json.dumps(data))
    everything, experiments = [], []
    for anchor, _, results_dir, _ in EXPERIMENTS:
        claims = claims_by_dir.get(results_dir, [])
        (root / results_dir).mkdir(parents=True, exist_ok=True)
        if anchor not in ("multitask", "distill", "fewshot"):  # those the report judges: no claims file of their own
            write_claims(root / results_dir / "claims.json", claims)
        everything += claims
        experiments += [anchor] * len(claims)
    write_claims(root / "metrics" / "claims.json", everything, experiments)
    return root


def _git(root, *args):
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def test_results_md_has_the_stamp_claims_and_headlines(tmp_path):
    root = _workspace(tmp_path / "ws", {"results/evaluation": [_claim("v1")],
                                        "results/fewshot": [_claim("f1", "inconclusive")]})
    _git(root, "init", "-q")
    _git(root, "add", "params.yaml")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    when = datetime(2026, 11, 3, 9, 30, tzinfo=timezone.utc)
    text = results_markdown(root, now=when, machine="test machine")
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True).stdout
    stamp = text.splitlines()[2]
    assert "2026-11-03 09:30 UTC" in stamp and f"commit {head.strip()} on" in stamp and "test machine" in stamp
    assert "params.yaml sha256 " in stamp and "+dirty" not in stamp
    assert "| statement of v1 | ✅ holds | evidence of v1 |" in text
    assert "## Claims\n\n**2 claims: 1 holds, 1 inconclusive.**\n" in text
    assert "[Few-shot learning by meta-learning](#fewshot) | statement of f1 | ➖ inconclusive" in text
    assert "best transfer head 70.0% vs scratch 40.0% (+30.0 pp)" in text
    assert "| backbone src-300 | 1/class 35.0% |" in text
    assert ("| gain vs scratch by source images, 1/class | 300 +2.0 pp [+1.0, +3.0]; permuted control 900 -1.0 pp "
            "[-3.0, +1.0] |") in text
    assert ("| extrapolated to 300/class from the smaller pools, full | predicted (%) 96.1 [94.0, 96.8], measured 98.0% "
            "(+1.9 pp, outside the interval) |") in text
    assert "≈ 2,660 training examples" in text and "| mean episode accuracy, 5way1shot/protonet | 78.0% |" in text
    assert "No stage timings in `.transferlab/timings.jsonl`" in text
    from transferlab.system.timings import TIMINGS_FILE, append_record

    for stage, wall in (("prepare", 41.7), ("finetune", 306.0)):
        append_record({"stage": stage, "started": f"2026-11-03T09:0{len(stage) % 9}:00", "ended": "2026-11-03T09:20:00",
                       "wall_s": wall, "startup_s": 2.0, "cpu_s": wall * 2, "peak_rss_mib": 900.0, "status": "ok"},
                      root / TIMINGS_FILE)
    timed = results_markdown(root, now=when, machine="test machine")
    assert "## Where time goes" in timed and "| finetune | 306.0 |" in timed and "total (2 stages)" in timed
    assert "Measured on other machines" not in timed
    (root / "benchmarks" / "results").mkdir(parents=True)
    (root / "benchmarks" / "results" / "gpu.md").write_text("# GPU figures\n\n## sweep\n\n| a |\n")
    elsewhere = results_markdown(root, now=when, machine="test machine")
    assert "## Measured on other machines" in elsewhere and "\n## GPU figures\n" in elsewhere
    assert "\n### sweep\n" in elsewhere and elsewhere.index("Where time goes") < elsewhere.index("GPU figures")
    (root / "params.yaml").write_text("report:\n  min_effect: 0.02\n")  # a tracked file differs from HEAD
    assert f"commit {head.strip()}+dirty" in results_markdown(root, now=when, machine="m")
    out = write_results_md(root, root / "docs" / "results.md")
    assert out.read_text().startswith("# Results")


def test_results_md_names_a_missing_input_and_a_stale_claims_file(tmp_path):
    root = _workspace(tmp_path / "ws", {"results/compare": [_claim("c1")]})
    (root / "metrics" / "distill.json").unlink()
    with pytest.raises(ResultsError, match="metrics/distill.json"):
        write_results_md(root, root / "results.md")
    assert not (root / "results.md").exists()
    root = _workspace(tmp_path / "ws2", {"results/compare": [_claim("c1")]})
    write_claims(root / "results" / "compare" / "claims.json", [_claim("c1", "does not hold")])  # judged again
    with pytest.raises(ResultsError, match="metrics/claims.json differs from results/compare/claims.json"):
        results_markdown(root, machine="m")
    root = _workspace(tmp_path / "ws3", {"results/compare": [_claim("c1")]})
    write_claims(root / "metrics" / "claims.json", [_claim("c1")])  # written before claims named their experiment
    with pytest.raises(ResultsError, match="claim 'c1' names no experiment: re-run the report stage"):
        results_markdown(root, machine="m")


def test_cli_report_exits_non_zero_naming_the_missing_file(tmp_path):
    from typer.testing import CliRunner

    from transferlab.cli import app

    result = CliRunner().invoke(app, ["report", "--results-md", str(tmp_path / "r.md"), "--repo", str(tmp_path)])
    assert result.exit_code == 2 and "metrics/claims.json" in result.output


def _extrapolation_dir(path, checked: bool = True):
    """The evaluation stage's extrapolation tables for two strategies (or the smoke case: none checkable), and a
    claims.json with a vision claim and the held-out one (last, as the stage writes it)."""
    from transferlab.analysis.extrapolate import HOLDOUT_KEY

    path.mkdir(parents=True)
    curves = pd.DataFrame([{"backbone": "full", "strategy": s, "per_class": n, **{
                               f"{m}{end}": acc + d for m in ("accuracy", "macro_f1")
                               for end, d in (("", 0.0), ("_low", -0.01), ("_high", 0.01))}}
                           for s, top in (("head", 0.88), ("full", 0.97))
                           for n, acc in zip((1, 5, 10, 50, 300), (0.5, 0.7, 0.78, 0.85, top))])
    curves.to_csv(path / "curves.csv", index=False)
    note = "" if checked else "needs ≥4 pool sizes (3 to fit + 1 held out); the sweep has 2 (1, 5)"
    rows = [{"backbone": "full", "strategy": s, "sizes": 5, "seeds": 3, "confidence": 0.95,
             "fitted_on": "1, 5, 10, 50" if checked else "", "n": 300.0,
             "a": 0.5 if checked else None, "b": 0.4 if checked else None, "c": 0.05 if checked else None,
             "predicted": pred if checked else None, "low": pred - 0.02 if checked else None,
             "high": pred + 0.02 if checked else None, "measured": meas,
             "miss_pp": (meas - pred) * 100 if checked else None, "inside": (abs(meas - pred) <= 0.02) if checked
             else None, "note": note} for s, pred, meas in (("head", 0.87, 0.88), ("full", 0.93, 0.97))]
    pd.DataFrame(rows).to_csv(path / "extrapolation.csv", index=False)
    pd.DataFrame([{"backbone": "full", "strategy": s, "sizes": 5, "fitted_on": "1, 5, 10, 50, 300", "a": 0.5,
                   "b": 0.4, "c": 0.05, "b_low": 0.3, "b_high": 0.5, "asymptote": 0.95, "asymptote_low": 0.93,
                   "asymptote_high": 0.97, "rmse_pp": 0.3, "note": ""} for s in ("head", "full")]).to_csv(
        path / "power_law.csv", index=False)
    write_claims(path / "claims.json", [_claim("transfer_helps_small_data"), _claim(HOLDOUT_KEY, "inconclusive")])
    return path


def test_extrapolation_section_shows_prediction_against_measurement_and_owns_its_claim(tmp_path):
    from transferlab.report.extrapolation import extrapolation_section, holdout_frame

    evaluation = _extrapolation_dir(tmp_path / "evaluation")
    doc = Document("r")
    card = {"classes": ["x"] * 5, "metrics": {"train_images": 100, "val_accuracy": 0.9, "parameters": 10}}
    (evaluation / "runs.csv").write_text("backbone,strategy,per_class,seed,train_seconds,accuracy\n"
                                         "full,head,1,0,1.0,0.5\n")
    vision_section(doc, evaluation, tmp_path / "none.csv", {"success": True, "tables": {}}, {"full": card},
                   ["0", "1"], 20, seeds=3, focus_per_class=10)
    extrapolation_section(doc, evaluation)
    # The stage's claim order is kept (vision's first, the held-out one last) and each links to its own section.
    assert [(s.anchor, c.key) for s, c in doc.claim_rows()] == [("vision", "transfer_helps_small_data"),
                                                                 ("extrapolation", "power_law_predicts_holdout")]
    figures = [v for k, v in doc.blocks if k == "fig"]
    assert figures[-1].name == "extrapolation_holdout" and figures[-1].png.startswith(b"\x89PNG")
    table = holdout_frame(pd.read_csv(evaluation / "extrapolation.csv"))
    assert list(table["inside"]) == ["yes", "no"] and list(table["measured − predicted (pp)"]) == ["+1.0", "+4.0"]
    assert table["predicted % [interval]"].iloc[1] == "93.0 [91.0, 95.0]"
    md = doc.markdown("f")
    assert "| full | 300 | 1, 5, 10, 50 | 93.0 [91.0, 95.0] | 97.0 | +4.0 | no |" in md
    assert "asymptotic accuracy % [interval]" in md and "95.0 [93.0, 97.0]" in md


def test_extrapolation_section_without_enough_pool_sizes_says_why(tmp_path):
    from transferlab.report.extrapolation import extrapolation_section

    evaluation = _extrapolation_dir(tmp_path / "evaluation", checked=False)
    doc = Document("r")
    extrapolation_section(doc, evaluation)
    assert not [v for k, v in doc.blocks if k == "fig"]  # nothing predicted: no figure
    md = doc.markdown("f")
    assert "needs ≥4 pool sizes (3 to fit + 1 held out); the sweep has 2 (1, 5)" in md
    assert "| head | 300 | – | – | 88.0 | – | – |" in md
    (evaluation / "extrapolation.csv").unlink()
    doc = Document("r2")
    extrapolation_section(doc, evaluation)  # an older evaluation: a sentence, not a crash
    assert "re-run the evaluate stage" in doc.markdown("f")


def test_a_ci_past_the_metrics_range_is_cut_and_marked_and_nothing_reads_nan():
    from transferlab.report.document import CLIPPED, NO_VALUE, ci_cell

    assert ci_cell(0.502, -0.554, 1.558) == f"50.2 [0.0, 100.0]{CLIPPED}"  # the FRR the issue quoted
    assert ci_cell(0.9, 0.85, 0.95) == "90.0 [85.0, 95.0]"
    assert ci_cell(-0.2, -1.4, 0.3, bounds=(-1.0, 1.0)) == f"-20.0 [-100.0, 30.0]{CLIPPED}"  # a gain: [-1, 1]
    assert ci_cell(12.0, 3.0, 30.0, scale=1, bounds=None) == "12.0 [3.0, 30.0]"  # a count: no bounds
    assert ci_cell(float("nan"), float("nan"), float("nan")) == NO_VALUE
    # Cut upstream (the learning curves store rates cut to [0, 1]): a bound at the edge, the mean inside.
    assert ci_cell(0.819, 0.582, 1.0) == f"81.9 [58.2, 100.0]{CLIPPED}"
    assert ci_cell(0.2, 0.0, 0.5) == f"20.0 [0.0, 50.0]{CLIPPED}"
    assert ci_cell(1.0, 1.0, 1.0) == "100.0 [100.0, 100.0]"  # every seed perfect: nothing was cut
    doc = Document("t")
    doc.section("s", "S", [])
    doc.table(pd.DataFrame({"a": [1.0, float("nan")], "b": ["x", None]}))
    assert "nan" not in doc.html().lower().replace("nanosecond", "") and "NaN" not in doc.markdown("f")
    assert f"| {NO_VALUE} | {NO_VALUE} |" in doc.markdown("f")


def test_the_backbone_table_shows_each_card_s_code_version_short():
    from transferlab.report.vision import backbone_table

    cards = {"audio": {"metrics": {"train_images": 10, "val_accuracy": 0.5, "parameters": 7},
                       "code_version": "0123456789abcdef0123456789abcdef01234567+dirty"},
             "old": {"metrics": {}}}
    table = backbone_table(cards).set_index("backbone")
    assert table.loc["audio", "code"] == "0123456789ab+dirty" and table.loc["old", "code"] == ""
