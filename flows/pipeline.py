"""Prefect flow that runs the DVC stages in DAG order (DVC keeps caching and dvc.lock)."""
from __future__ import annotations

import json
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.states import Failed

from flows.dvc_stages import failure_line, repro_with_retries, stage_order
from flows.lifeline import watch_parent
from flows.workspace_lock import WorkspaceBusy, lock_timeout, workspace_lock


@task(task_run_name="dvc-{stage}")
def run_stage(stage: str, repo_dir: str, force: bool = False):
    """One stage, its output streamed to the log as it runs; a transient failure is tried again. A failed stage
    fails the task with one line as its message (the output is in the log already): no traceback per task."""
    logger = get_run_logger()
    result = repro_with_retries(stage, repo_dir, force, on_line=logger.info)
    if result.returncode != 0:
        return Failed(message=failure_line(result))
    logger.info("%s: %s in %.1f s", stage, "ran" if result.ran else "unchanged (DVC cache)", result.seconds)
    if result.ran:  # for `transferlab lineage`: this flow run made the outs dvc.lock now lists
        from prefect.runtime import flow_run

        from transferlab.ops.lineage import record_flow_run

        record_flow_run(repo_dir, stage, str(flow_run.id), str(flow_run.name))
    return {"stage": stage, "status": "ran" if result.ran else "cached", "seconds": round(result.seconds, 1)}


def _read_json(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def publish_artifacts(repo: Path, runs: list[dict]) -> None:
    """A Markdown summary, a metrics table, and a link to the HTML report."""
    lines = ["# transferlab pipeline", "", "| stage | status | seconds |", "|---|---|---|"]
    lines += [f"| {r['stage']} | {r['status']} | {r['seconds']} |" for r in runs]
    claims = _read_json(repo / "metrics" / "claims.json") or []
    if claims:
        lines += ["", "## Claims", "", "| claim | verdict | evidence |", "|---|---|---|"]
        lines += [f"| {c['claim']} | {c['verdict']} | {c['evidence']} |" for c in claims]
    create_markdown_artifact("\n".join(lines), key="transferlab-summary", description="Pipeline run summary")
    metrics = _read_json(repo / "metrics" / "evaluate.json") or {}
    rows = [{"size": size, **{k: v for k, v in values.items()}} for size, values in metrics.items()
            if size.startswith("n")]
    if rows:
        create_table_artifact(rows, key="transferlab-metrics", description="Test accuracy by strategy and size")
    report = repo / "reports" / "transfer" / "report.html"
    if report.exists():
        create_link_artifact(report.resolve().as_uri(), link_text="HTML report", key="transferlab-report")


@flow(name="transferlab-pipeline", log_prints=True)
def pipeline(repo_dir: str = ".", stages: list[str] | None = None, force: bool = False) -> list[dict]:
    """Run every DVC stage (or the named ones) in dependency order, then publish artifacts."""
    repo = Path(repo_dir).resolve()
    logger = get_run_logger()
    watch_parent()  # a run whose `flows.serve` was killed stops instead of running on as an orphan
    try:
        # A second flow on the same workspace waits for the first (bounded), then fails with a clear message.
        with workspace_lock(repo, "transferlab-pipeline flow", lock_timeout()):
            order = stage_order(repo)
            if stages:
                unknown = sorted(set(stages) - set(order))
                if unknown:
                    raise ValueError(f"unknown stage(s) {unknown}; dvc.yaml has {order}")
                order = [s for s in order if s in stages]
            runs = []
            for stage in order:  # sequential: each needs the previous
                state = run_stage(stage, str(repo), force, return_state=True)
                if not state.is_completed():
                    error = state.message or f"stage {stage} ended {state.name}"
                    runs.append({"stage": stage, "status": "failed", "seconds": "-", "error": error})
                    break
                runs.append(state.result())
            publish_artifacts(repo, runs)
    except (WorkspaceBusy, ValueError) as err:
        logger.error(str(err))
        return Failed(message=str(err))
    if runs and runs[-1].get("error"):
        logger.error(runs[-1]["error"])
        return Failed(message=runs[-1]["error"])
    return runs


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repo", default=".")
    parser.add_argument("--stage", action="append", dest="stages")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    state = pipeline(args.repo, args.stages, args.force, return_state=True)
    if state.is_failed():
        import sys

        print(f"pipeline failed: {state.message}", file=sys.stderr)
        sys.exit(1)
