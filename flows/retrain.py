"""Prefect flow: pick up new labelled target data from the inbox, validate it (GX), merge good batches
into the DVC-tracked target pool (bad ones are quarantined with their report), re-run the pipeline, and
promote the new model only if it beats the champion on the fixed test set by `retrain.margin`."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

from flows.dvc_stages import repro_stage
from flows.workspace_lock import lock_timeout, workspace_lock
from transferlab.lineage import stage_arguments
from transferlab.registry import REGISTRY_FILE, commit_files


def _command(args: list[str], repo: str) -> str:
    proc = subprocess.run(args, cwd=repo, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


@task(task_run_name="intake-{track}")
def intake(repo: str, track: str) -> dict:
    result = json.loads(_command([sys.executable, "-m", "transferlab.cli", "intake", "--track", track],
                                 repo).strip().splitlines()[-1])
    logger = get_run_logger()
    for r in result["batches"]:
        logger.info("batch %s: %s (%d items) → %s %s", r["batch"], r["status"], r["items"], r["moved_to"],
                    "; ".join(r["problems"]))
    return result


@task(task_run_name="dvc-add-pool")
def track_pool(repo: str, pool: str) -> None:
    _command([sys.executable, "-m", "dvc", "add", pool], repo)


@task(task_run_name="dvc-repro-{stage}", retries=1, retry_delay_seconds=5)
def repro(repo: str, stage: str, force_single: bool = False) -> dict:
    # prepare is forced (the pool is a params path, not a declared dep: DVC cannot see new files in it);
    # then the target stage with its upstream: DVC re-runs only what the new prepared data changed.
    result = repro_stage(stage, repo, force=force_single, single=force_single)
    if result.returncode != 0:
        raise RuntimeError(f"dvc repro {stage} failed:\n{result.output[-3000:]}")
    return {"stage": stage, "ran": result.ran, "seconds": round(result.seconds, 1)}


@task(task_run_name="git-commit")
def commit(repo: str, paths: list[str], message: str) -> str | None:
    """Record what made the model in git (a GTO version tag names a commit, one version per commit)."""
    return commit_files(Path(repo), paths, message)


@task(task_run_name="champion-vs-challenger-{track}")
def promote(repo: str, track: str) -> dict:
    return json.loads(_command([sys.executable, "-m", "transferlab.cli", "promote", "--track", track],
                               repo).strip().splitlines()[-1])


def publish(repo: Path, track: str, batches: list[dict], decision: dict | None) -> None:
    lines = [f"# transferlab retrain ({track})", "", "| batch | status | items | where | problems |",
             "|---|---|---|---|---|"]
    lines += [f"| {b['batch']} | {b['status']} | {b['items']} | {b['moved_to']} | {'; '.join(b['problems'])} |"
              for b in batches] or ["| (inbox empty) | | | | |"]
    if decision:
        verdict = "**promoted**" if decision["promoted"] else "not promoted"
        lines += ["", f"Challenger v{decision['challenger_version']} ({decision['challenger']}): {verdict} — "
                      f"{decision['reason']}."]
    else:
        lines += ["", "No new data merged: nothing retrained."]
    create_markdown_artifact("\n".join(lines), key=f"transferlab-retrain-{track}", description="Retrain run summary")
    if decision:
        create_table_artifact([{k: decision[k] for k in ("metric", "challenger_version", "challenger_score",
                                                         "champion_version", "champion_score", "margin",
                                                         "promoted")}],
                              key=f"transferlab-retrain-{track}-metrics", description="Champion vs challenger")
    try:
        report = repo / stage_arguments(repo, "report")["out"] / "report.html"  # where dvc.lock says it went
    except (ValueError, KeyError):
        return
    if report.exists():
        create_link_artifact(report.resolve().as_uri(), link_text="HTML report", key="transferlab-report")


@flow(name="transferlab-retrain", log_prints=True)
def retrain(repo_dir: str = ".", track: str = "vision") -> dict:
    """Intake → (if anything merged, or no champion yet) dvc add + dvc repro of the track's fine-tuning →
    champion vs challenger."""
    repo = Path(repo_dir).resolve()
    with workspace_lock(repo, f"transferlab-retrain flow ({track})", lock_timeout()):
        found = intake(str(repo), track)
        batches, decision = found["batches"], None
        if any(b["status"] == "merged" for b in batches) or found["champion_version"] is None:
            track_pool(str(repo), found["pool"])
            repro(str(repo), found["prepare_stage"], force_single=True)
            repro(str(repo), found["finetune_stage"])
            pool = Path(found["pool"])
            merged = [b["batch"] for b in batches if b["status"] == "merged"]
            commit(str(repo), ["dvc.lock", f"{pool}.dvc", str(pool.parent / ".gitignore")],
                   f"retrain {track}: merged {', '.join(merged) or 'nothing'} into {pool}, re-ran the pipeline")
            decision = promote(str(repo), track)
            commit(str(repo), [REGISTRY_FILE], f"registry: {decision['name']} v{decision['challenger_version']} "
                                               + ("promoted to champion" if decision["promoted"] else "registered"))
        publish(repo, track, batches, decision)
    return {"track": track, "batches": batches, "decision": decision}


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repo", default=".")
    parser.add_argument("--track", default="vision", choices=["vision", "audio"])
    args = parser.parse_args()
    retrain(args.repo, args.track)
