"""Prefect flow that runs the DVC stages in DAG order (DVC keeps caching and dvc.lock)."""
from __future__ import annotations

import json
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

from flows.dvc_stages import StageRun, repro_stage, stage_order
from flows.workspace_lock import lock_timeout, workspace_lock


class StageFailed(RuntimeError):
    def __init__(self, run: StageRun):
        tail = "\n".join(run.output.strip().splitlines()[-15:])
        super().__init__(f"stage {run.stage} failed (exit {run.returncode}):\n{tail}")
        self.run = run


def _retry_if_transient(task_obj, task_run, state) -> bool:
    try:
        state.result()
    except StageFailed as err:
        return err.run.transient
    except Exception:  # noqa: BLE001 - anything else (e.g. the worker died) is worth another try
        return True
    return False


@task(retries=2, retry_delay_seconds=5, retry_condition_fn=_retry_if_transient, task_run_name="dvc-{stage}")
def run_stage(stage: str, repo_dir: str, force: bool = False) -> dict:
    logger = get_run_logger()
    result = repro_stage(stage, repo_dir, force)
    for line in result.output.strip().splitlines():
        logger.info(line)
    if result.returncode != 0:
        raise StageFailed(result)
    logger.info("%s: %s in %.1f s", stage, "ran" if result.ran else "unchanged (DVC cache)", result.seconds)
    if result.ran:  # for `transferlab lineage`: this flow run made the outs dvc.lock now lists
        from prefect.runtime import flow_run

        from transferlab.lineage import record_flow_run

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
    # A second flow on the same workspace waits for the first (bounded), then fails with a clear message.
    with workspace_lock(repo, "transferlab-pipeline flow", lock_timeout()):
        order = stage_order(repo)
        if stages:
            unknown = sorted(set(stages) - set(order))
            if unknown:
                raise ValueError(f"unknown stage(s) {unknown}; dvc.yaml has {order}")
            order = [s for s in order if s in stages]
        runs = [run_stage(stage, str(repo), force) for stage in order]  # sequential: each needs the previous
        publish_artifacts(repo, runs)
    return runs


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repo", default=".")
    parser.add_argument("--stage", action="append", dest="stages")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    pipeline(args.repo, args.stages, args.force)
