"""Integration: the real `dvc repro` of the smoke profile, DVC's own commands, and the Prefect flow."""
import json
import os
import re
import sys

import pytest
import yaml

from ..conftest import dvc, sh

DECLARED_OUTS = [
    "data/prepared/source/images.safetensors", "data/prepared/source/metadata.csv",
    "data/prepared/target/images.safetensors", "data/prepared/target/metadata.csv", "data/prepared/target/pools.csv",
    "reports/validation/result.json", "reports/validation/datadocs/index.html",
    "models/pretrained/src-full/model.safetensors", "models/pretrained/src-full/card.json",
    "models/pretrained/curve/src-100/model.safetensors", "models/pretrained/curve/src-400/card.json",
    "models/pretrained/curve/permuted/model.safetensors", "results/evaluation/source_curve.csv",
    "results/finetune/predictions.safetensors",
    "results/finetune/runs.csv", "results/evaluation/curves.csv", "plots/learning_curve.csv",
    "plots/confusion.csv", "metrics/evaluate.json", "metrics/claims.json",
    "reports/transfer/report.html", "reports/transfer/report.md",
    "data/audio/source/clips.safetensors", "data/audio/target/pools.csv", "reports/validation-audio/result.json",
    "models/audio/pretrained/model.safetensors", "results/audio/finetune/predictions.safetensors",
    "results/audio/evaluation/curves.csv", "plots-audio/det.csv", "plots-audio/frr_curve.csv", "metrics/audio.json",
    "data/features/features.safetensors", "data/canvases/images.safetensors",
    "results/branches/audio-pipeline/runs.csv", "results/branches/audio-e2e/runs.csv",
    "results/branches/vision-pipeline/runs.csv", "results/branches/vision-e2e/runs.csv",
    "results/compare/curves.csv", "plots-compare/sweep.csv", "metrics/compare.json",
    "reports/validation-canvases/result.json", "data/scenes/images.safetensors", "reports/validation-scenes/result.json",
    "results/multitask/runs.csv", "results/multitask/arms.csv", "metrics/multitask.json",
    "results/distill/runs.csv", "results/distill/summary.json", "metrics/distill.json",
    "models/fewshot/protonet/model.safetensors", "models/fewshot/protonet/card.json", "results/fewshot/episodes.csv",
    "metrics/fewshot.json", "data/weights.json", "models/imported/manifest.json",
    "models/imported/silero-vad/model.safetensors", "results/audio/ceiling/ceiling.json",
    "results/audio/evaluation/ceiling.csv", "results/transferability/scores.csv", "results/transferability/timing.csv",
    "results/transferability_check/tau.csv", "results/transferability_check/claims.json", "metrics/transferability.json",
]


def test_repro_writes_every_declared_out(smoke_repo):
    missing = [p for p in DECLARED_OUTS if not (smoke_repo / p).exists()]
    assert not missing


def test_silero_vad_runs_beside_our_audio_backbone(smoke_repo, smoke_params):
    """The real-speech backbone from the silero-vad wheel is imported by default and fine-tuned on the same
    pools and seeds as ours (its ablation strategy), and the wake-word claims judge it against ours."""
    import pandas as pd

    runs = pd.read_csv(smoke_repo / "results" / "audio" / "evaluation" / "runs.csv")
    silero = runs[runs["backbone"] == "silero-vad"]
    assert set(silero["strategy"]) == {smoke_params.audio.finetune.ablation_strategy}
    assert len(silero) == len(smoke_params.audio.prepare.target.pool_sizes) * smoke_params.audio.finetune.seeds
    claims = json.loads((smoke_repo / "results" / "audio" / "evaluation" / "claims.json").read_text())
    assert any(c["key"].startswith("backbone_silero-vad_beats_audio") for c in claims)
    card = json.loads((smoke_repo / "models" / "imported" / "silero-vad" / "card.json").read_text())
    assert card["parents"][0]["role"] == "pretrained-weights" and card["imported"]["sample_rate"] == 16000


def test_the_source_size_curve_and_its_control_are_trained_fine_tuned_and_judged(smoke_repo, smoke_params):
    """pretrain_curve@<n> learns from n class-balanced source images for at least min_steps; the control from every
    image, pixels permuted; both fine-tune at curve_pool_sizes only, and the claims read the curve."""
    import pandas as pd

    cards = {n: json.loads((smoke_repo / "models" / "pretrained" / "curve" / n / "card.json").read_text())
             for n in ("src-100", "src-400", "permuted")}
    full = json.loads((smoke_repo / "models" / "pretrained" / "src-full" / "card.json").read_text())
    assert cards["src-100"]["metrics"]["train_images"] == 100 and cards["src-400"]["metrics"]["train_images"] == 400
    assert cards["src-100"]["metrics"]["steps"] >= smoke_params.pretrain.min_steps
    assert cards["permuted"]["metrics"]["train_images"] == full["metrics"]["train_images"]
    assert cards["permuted"]["params"]["source_variant"]["permute_pixels"] is True
    runs = pd.read_csv(smoke_repo / "results" / "evaluation" / "runs.csv")
    curve = runs[runs["backbone"].isin(list(cards))]
    assert set(curve["per_class"]) == set(smoke_params.finetune.curve_pool_sizes)
    assert set(curve["strategy"]) == {smoke_params.finetune.ablation_strategy}
    table = pd.read_csv(smoke_repo / "results" / "evaluation" / "source_curve.csv")
    assert sorted(set(table["backbone"])) == ["permuted", "src-100", "src-400", "src-full"]
    claims = {c["key"] for c in json.loads((smoke_repo / "results" / "evaluation" / "claims.json").read_text())}
    assert {f"source_size_n{n}" for n in smoke_params.finetune.curve_pool_sizes} <= claims
    assert {f"permuted_control_n{n}" for n in smoke_params.finetune.curve_pool_sizes} <= claims
    check = json.loads((smoke_repo / "results" / "transferability_check" / "claims.json").read_text())
    assert any(c["key"].endswith("_control_last") for c in check)
    assert "source-size curve" in (smoke_repo / "reports" / "transfer" / "report.html").read_text()


def test_metrics_are_sane(smoke_repo, smoke_params):
    metrics = json.loads((smoke_repo / "metrics" / "evaluate.json").read_text())
    sizes = smoke_params.prepare.target.pool_sizes
    assert sorted(k for k in metrics if k.startswith("n")) == sorted(f"n{n}" for n in sizes)
    for n in sizes:
        row = metrics[f"n{n}"]
        for s in smoke_params.finetune.strategies:
            assert 0.0 <= row[s] <= 1.0
        assert row["best_transfer"] in smoke_params.finetune.strategies
    # Even the tiny smoke backbone must beat chance (10 classes) once it has 5 examples per class.
    assert metrics[f"n{sizes[-1]}"]["best_transfer_accuracy"] > 0.2
    claims = json.loads((smoke_repo / "metrics" / "claims.json").read_text())
    assert {c["verdict"] for c in claims} <= {"holds", "does not hold", "inconclusive"}
    assert len(claims) >= 5
    html = (smoke_repo / "reports" / "transfer" / "report.html").read_text()
    assert "data:image/png;base64," in html and "Claims" in html
    for section in ("Audio: spoken words", "DET curves", "Hand-built pipeline vs end-to-end", "crossover"):
        assert section in html, section
    keys = {c["key"] for c in claims}
    assert {"audio_transfer_helps_few_positives", "audio_reference_n10", "audio_crossover", "vision_crossover"} <= keys


def test_audio_metrics_and_branch_sweeps(smoke_repo, smoke_params):
    audio = json.loads((smoke_repo / "metrics" / "audio.json").read_text())
    sizes = smoke_params.audio.prepare.target.pool_sizes
    assert sorted(audio) == sorted(f"pos{n}" for n in sizes)
    for n in sizes:
        for s in smoke_params.audio.finetune.strategies:
            assert 0.0 <= audio[f"pos{n}"][s]["auroc"] <= 1.0 and audio[f"pos{n}"][s]["fa_per_hour"] >= 0
    # Every run was scored on the continuous streams: FRR at each false-accept rate per hour, the deployed threshold.
    import pandas as pd

    rates = smoke_params.audio.detect.fa_rates
    for n in sizes:
        for s in smoke_params.audio.finetune.strategies:
            entry = audio[f"pos{n}"][s]
            assert all(0.0 <= entry[f"frr_at_{r:g}fa_h".replace(".", "_")] <= 1.0 for r in rates)
            assert entry["deployed_fa_per_hour"] >= 0
    runs = pd.read_csv(smoke_repo / "results" / "audio" / "evaluation" / "runs.csv")
    assert (runs["stream_windows"] > 0).all() and len(runs) == runs["run_id"].nunique()
    card = json.loads((smoke_repo / "models" / "audio" / "finetuned" / f"audio-full-n{sizes[-1]}" / "card.json").read_text())
    detector = card["detector"]
    assert detector["target_fa_per_hour"] == smoke_params.audio.detect.target_fa_per_hour
    assert detector["hop_s"] == smoke_params.audio.detect.hop_s and 0.0 <= detector["threshold"] <= 1.0 + 1e-6
    assert detector["validation_fa_per_hour"] <= detector["target_fa_per_hour"]
    ceiling = json.loads((smoke_repo / "results" / "audio" / "ceiling" / "ceiling.json").read_text())
    assert "frr_at_0_5fa_h" in ceiling and all("frr_at_0_5fa_h" in r for r in ceiling["runs"])
    report = (smoke_repo / "reports" / "transfer" / "report.md").read_text()
    assert "### On continuous audio" in report and "figures/det_stream.png" in report
    for branch, cfg in (("audio-pipeline", smoke_params.branches.audio), ("vision-e2e", smoke_params.branches.vision)):
        runs = pd.read_csv(smoke_repo / "results" / "branches" / branch / "runs.csv")
        assert sorted(set(runs["size"])) == list(cfg.sizes) and runs["seed"].nunique() == cfg.seeds
    # Both branches of a track are scored on one test set and the same training sizes.
    compare = json.loads((smoke_repo / "metrics" / "compare.json").read_text())
    assert set(compare) == {"audio", "vision"}


def test_wake_word_ceiling_benchmark_scores_the_prepared_test_set(smoke_repo):
    from ..conftest import ROOT

    out = sh([sys.executable, str(ROOT / "benchmarks" / "wake_word_ceiling.py"), "--params",
              str(smoke_repo / "params.yaml"), "--target", str(smoke_repo / "data" / "audio" / "target"),
              "--backbone", str(smoke_repo / "models" / "audio" / "pretrained"), "--positives", "12",
              "--steps", "4", "--batch-size", "8", "--widths", "4,8,8"], smoke_repo).stdout
    assert "synthesised 24 training clips (12 positives)" in out
    assert "done: audio_crnn 4,8,8 from scratch" in out and "full fine-tuning" in out


def test_multitask_distillation_and_fewshot_stages(smoke_repo, smoke_params):
    import pandas as pd

    runs = pd.read_csv(smoke_repo / "results" / "multitask" / "runs.csv")
    cfg = smoke_params.multitask
    assert set(runs["experiment"]) == {"width", "missing_labels", "few_labels"} and runs["seed"].nunique() == cfg.seeds
    assert set(runs[runs["experiment"] == "width"]["task"]) == set(cfg.scenes.tasks)
    assert runs["auroc"].between(0, 1).all()
    # K separate single-output networks of the same body hold more parameters than the one shared network.
    width = runs[runs["experiment"] == "width"].groupby("arm")["params"].max()
    assert width["separate"] > width["shared"]
    distill = json.loads((smoke_repo / "metrics" / "distill.json").read_text())
    assert distill["student_params"] < distill["teacher_params"] and distill["teacher_latency_ms"] > 0
    students = pd.read_csv(smoke_repo / "results" / "distill" / "runs.csv")
    assert set(students["kind"]) == {"hard", "distilled"} and students["omitted"].notna().any()
    episodes = pd.read_csv(smoke_repo / "results" / "fewshot" / "episodes.csv")
    fs = smoke_params.fewshot
    assert episodes.groupby(["shots", "method"]).size().eq(fs.test_episodes).all()
    card = json.loads((smoke_repo / "models" / "fewshot" / "protonet" / "card.json").read_text())
    assert card["classes"] == [] and {p["role"] for p in card["parents"]} == {"episodes", "initialisation"}
    keys = {c["key"] for c in json.loads((smoke_repo / "metrics" / "claims.json").read_text())}
    assert {"mtl_shared_beats_separate", "mtl_mask_missing_labels", "distill_recovers_unseen_class",
            "meta_beats_pretrained_features_k1"} <= keys
    html = (smoke_repo / "reports" / "transfer" / "report.html").read_text()
    for section in ("Multi-task learning", "Knowledge distillation", "Few-shot learning"):
        assert section in html, section


def test_model_card_names_its_data(smoke_repo):
    from transferlab.ops.lineage import trace

    card = json.loads((smoke_repo / "models" / "pretrained" / "src-full" / "card.json").read_text())
    lock = yaml.safe_load((smoke_repo / "dvc.lock").read_text())
    source = card["parents"][0]
    assert source["role"] == "source" and source["path"] == "data/prepared/source"
    assert card["architecture"]["name"] == "convnet_small" and len(card["classes"]) == 52
    # One hash for a folder: the card's parent md5 is the one dvc.lock and `lineage` give the same folder.
    made_by = {o["path"]: o["md5"] for o in lock["stages"]["prepare"]["outs"]}
    assert source["md5"] == made_by["data/prepared/source"]
    pretrain = next(s for s in trace(smoke_repo, "models/pretrained/src-full").steps if s.stage == "pretrain@src-full")
    assert pretrain.deps["data/prepared/source"] == source["md5"]


def test_second_repro_runs_nothing(smoke_repo):
    """Only data_roots runs (it hashes the user's folders every time; embedded data names none), and what it
    writes is unchanged, so nothing after it runs."""
    out = dvc("repro", cwd=smoke_repo).stdout
    assert re.findall(r"Running stage '([^']+)'", out) == ["data_roots"]
    status = dvc("status", cwd=smoke_repo).stdout
    assert re.findall(r"^(\S+):", status, flags=re.M) == ["data_roots"] and "always changed" in status


def test_dvc_dag_metrics_and_plots(smoke_repo):
    dot = dvc("dag", "--dot", cwd=smoke_repo).stdout
    edges = {tuple(part.strip().strip('";') for part in line.split("->")) for line in dot.splitlines() if "->" in line}
    for edge in [("prepare", "validate"), ("validate", "pretrain@src-full"), ("pretrain@src-full", "finetune"),
                 ("finetune", "evaluate"), ("evaluate", "report"), ("validate", "pretrain@permuted"),
                 ("validate", "pretrain_curve@100"), ("pretrain_curve@400", "finetune"), ("pretrain@permuted", "finetune"),
                 ("pretrain_curve@100", "transferability"), ("pretrain@permuted", "evaluate"),
                 ("audio_prepare", "audio_validate"), ("audio_validate", "audio_pretrain"),
                 ("audio_pretrain", "audio_finetune"), ("audio_finetune", "audio_evaluate"),
                 ("audio_streams", "audio_finetune"), ("audio_streams", "audio_evaluate"),
                 ("audio_streams", "audio_ceiling"),
                 ("audio_evaluate", "report"), ("audio_validate", "features"), ("features", "branch@audio-pipeline"),
                 ("audio_prepare", "branch@audio-e2e"), ("canvases", "branch@vision-pipeline"),
                 ("canvases", "branch@vision-e2e"), ("branch@audio-e2e", "compare"), ("compare", "report"),
                 ("validate", "scenes"), ("scenes", "multitask"), ("multitask", "report"), ("finetune", "distill"),
                 ("distill", "report"), ("pretrain@src-full", "fewshot"), ("fewshot", "report"),
                 ("data_roots", "import_backbones"), ("import_backbones", "finetune"),
                 ("import_backbones", "audio_finetune"), ("audio_pretrain", "audio_ceiling"),
                 ("audio_ceiling", "audio_evaluate"), ("pretrain@src-full", "transferability"),
                 ("import_backbones", "transferability"), ("transferability", "transferability_check"),
                 ("finetune", "transferability_check"), ("transferability_check", "report")]:
        assert edge in edges, (edge, dot)
    shown = json.loads(dvc("metrics", "show", "--json", cwd=smoke_repo).stdout)
    files = next(iter(shown.values()))["data"]
    assert list(files) == ["metrics/summary.json"]  # the one metrics file; the rest are results
    summary = files["metrics/summary.json"]["data"]
    assert set(summary) == {"acc_small", "acc_large", "gain_small", "frr", "tau", "holds", "fails", "unsure"}
    claims = json.loads((smoke_repo / "metrics" / "claims.json").read_text())
    assert summary["holds"] + summary["fails"] + summary["unsure"] == len(claims)
    table = dvc("metrics", "show", cwd=smoke_repo).stdout
    assert max(map(len, table.splitlines())) <= 160, table
    dvc("plots", "show", "--json", cwd=smoke_repo)


def test_exp_run_with_set_param(smoke_repo):
    sh(["git", "add", "-A"], smoke_repo)
    sh(["git", "commit", "-qm", "smoke results"], smoke_repo)
    out = dvc("exp", "run", "-S", "report.min_effect=0.02", cwd=smoke_repo).stdout
    # A reporting threshold re-runs only the stages that judge (evaluations and the report), never one that trains.
    ran = set(re.findall(r"Running stage '([^']+)'", out)) - {"data_roots"}  # data_roots runs every time
    assert "report" in ran and ran <= {"evaluate", "audio_evaluate", "compare", "transferability_check", "report"}, ran
    table = dvc("exp", "show", "--json", cwd=smoke_repo).stdout
    assert "0.02" in table


def test_prefect_flow_runs_the_stages_and_reuses_the_cache(smoke_repo, monkeypatch, tmp_path):
    from prefect.testing.utilities import prefect_test_harness

    monkeypatch.setenv("PATH", f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    from flows.pipeline import pipeline

    with prefect_test_harness(server_startup_timeout=120):
        state = pipeline(repo_dir=str(smoke_repo), return_state=True)
        assert state.is_completed()
        runs = state.result()
        order = [r["stage"] for r in runs]
        assert order.index("prepare") < order.index("validate") < order.index("canvases")
        # The report after everything it reads (audio_streams feeds nothing yet, so DVC may order it after).
        assert all(order.index(s) < order.index("report") for s in ("evaluate", "audio_evaluate", "compare",
                                                                      "multitask", "distill", "fewshot",
                                                                      "transferability_check"))
        assert order.index("audio_prepare") < order.index("audio_validate") < order.index("audio_pretrain")
        # Nothing changed since the repro: only data_roots runs (it always does; its manifest is unchanged).
        assert {r["stage"] for r in runs if r["status"] != "cached"} == {"data_roots"}

        from prefect.artifacts import Artifact

        for key in ("transferlab-summary", "transferlab-metrics", "transferlab-report"):
            assert Artifact.get(key) is not None, key
        summary = Artifact.get("transferlab-summary")
        assert "| report | cached |" in summary.data
        # A stage the flow really runs is recorded, so lineage can name the flow run behind an artifact.
        forced = pipeline(repo_dir=str(smoke_repo), stages=["report"], force=True, return_state=True)
        assert forced.is_completed() and forced.result()[0]["status"] == "ran"
        from transferlab.ops.lineage import trace

        step = trace(smoke_repo, "reports/transfer/report.html").steps[0]
        assert step.stage == "report" and step.flow_run and step.flow_run["flow_run_id"]
        # While another flow run holds the workspace, a second one fails with a clear message after its
        # bounded wait, and leaves the workspace as it was.
        from flows.workspace_lock import workspace_lock

        lock_before = (smoke_repo / "dvc.lock").read_text()
        monkeypatch.setenv("TRANSFERLAB_LOCK_TIMEOUT", "2")
        with workspace_lock(smoke_repo, "a concurrent flow run"):
            busy = pipeline(repo_dir=str(smoke_repo), stages=["report"], force=True, return_state=True)
        assert busy.is_failed()
        with pytest.raises(Exception, match="is busy: another flow run holds"):
            busy.result()
        assert (smoke_repo / "dvc.lock").read_text() == lock_before


def test_lineage_of_a_model_names_the_upstream_hashes_and_flags_a_stale_workspace(smoke_repo):
    from transferlab.ops.lineage import render_mermaid, render_text, trace

    lock = yaml.safe_load((smoke_repo / "dvc.lock").read_text())["stages"]
    out_md5 = {o["path"]: o["md5"] for s in lock.values() for o in s.get("outs", [])}
    lin = trace(smoke_repo, "models/finetuned/src-full-full-n5/model.safetensors")
    stages = [s.stage for s in lin.steps]
    assert stages[0] == "finetune" and {"pretrain@src-full", "validate", "prepare"} <= set(stages)
    finetune = lin.steps[0]
    assert finetune.deps["data/prepared/target"] == out_md5["data/prepared/target"]
    assert finetune.deps["models/pretrained/src-full"] == out_md5["models/pretrained/src-full"]
    assert finetune.params["params.yaml"]["finetune"]["seeds"] == 2
    assert "stages/prepare.py" in lin.raw_inputs
    # Lineage agrees with DVC's own status about the chain (earlier tests in this module change the workspace).
    status = json.loads(dvc("status", "--json", *[s.stage for s in lin.steps], cwd=smoke_repo).stdout or "{}")
    status = {stage: c for stage, c in status.items() if c != ["always changed"]}  # data_roots, by design
    assert "data_roots" in [s.stage for s in lin.steps]
    assert lin.stale == bool(status), (status, [(s.stage, s.changed) for s in lin.steps])
    text = render_text(lin)
    assert ("STALE" in text) == lin.stale and out_md5["data/prepared/source"] in text
    assert render_mermaid(lin).startswith("graph LR") and "finetune" in render_mermaid(lin)
    # A changed input makes the artifact stale, and lineage says so (then the workspace is restored).
    params = smoke_repo / "params.yaml"
    original = params.read_text()
    try:
        params.write_text(original.replace("max_steps: 20", "max_steps: 21", 1))
        stale = trace(smoke_repo, "models/finetuned")
        assert stale.stale and any("finetune" in c for c in stale.steps[0].changed)
        assert "STALE" in render_text(stale)
    finally:
        params.write_text(original)
    with pytest.raises(ValueError, match="no stage in dvc.lock produces"):
        trace(smoke_repo, "README.md")
    out = sh([sys.executable, "-m", "transferlab.cli", "lineage", "metrics/claims.json", "--format", "json"],
             smoke_repo)
    assert json.loads(out.stdout)["steps"][0]["stage"] == "report"


def test_openlineage_events_name_each_stage_run_with_inputs_outputs_and_md5(smoke_repo):
    from transferlab.system.io import dir_md5

    events = [json.loads(line) for line in (smoke_repo / ".transferlab" / "openlineage.jsonl").read_text().splitlines()]
    finetune = [e for e in events if e["job"]["name"] == "finetune"]
    assert [e["eventType"] for e in finetune[:2]] == ["START", "COMPLETE"]
    assert finetune[0]["run"]["runId"] == finetune[1]["run"]["runId"]
    done = finetune[1]
    inputs = {d["name"]: d["facets"]["version"]["datasetVersion"] for d in done["inputs"]}
    outputs = {d["name"]: d["facets"]["version"]["datasetVersion"] for d in done["outputs"]}
    target = str((smoke_repo / "data" / "prepared" / "target").resolve())
    assert inputs[target] == dir_md5(smoke_repo / "data" / "prepared" / "target")
    assert str((smoke_repo / "results" / "finetune").resolve()) in outputs
    assert str((smoke_repo / "params.yaml").resolve()) in inputs
    assert {e["job"]["name"] for e in events} >= {"prepare", "validate", "pretrain@src-full", "report"}


def test_a_failing_stage_emits_a_fail_event(tmp_path, monkeypatch):
    from stages._common import StageError, stage_main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRANSFERLAB_OPENLINEAGE", "on")
    monkeypatch.setenv("DVC_STAGE", "doomed")
    (tmp_path / "params.yaml").write_text("{}\n")
    (tmp_path / "in.csv").write_text("a\n1\n")

    def run(params, args):
        raise StageError("the data is bad")

    with pytest.raises(SystemExit) as exit_info:
        stage_main("doomed", {"data": "input"}, run, ["--data", "in.csv"])
    assert exit_info.value.code == 2
    events = [json.loads(line) for line in (tmp_path / ".transferlab" / "openlineage.jsonl").read_text().splitlines()]
    assert [e["eventType"] for e in events] == ["START", "FAIL"]
    assert events[1]["run"]["facets"]["errorMessage"]["message"] == "the data is bad"
    assert {d["name"] for d in events[1]["inputs"]} == {str(tmp_path / "params.yaml"), str(tmp_path / "in.csv")}
