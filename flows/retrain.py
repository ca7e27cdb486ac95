"""Prefect flow: pick up new labelled target data from the inbox, validate it (GX), merge good batches
into the DVC-tracked target pool (bad ones are quarantined with their report), re-run the pipeline, and
promote the new model only if it beats the champion on the fixed test set by `retrain.margin`.

A retrain is a transaction (transferlab.ops.retrain_journal): everything is checked before the inbox is
touched, and if anything fails after a merge, the batches go back to the inbox and the pool, its .dvc file and
dvc.lock are restored. A failed run ends with one line that says why.

Intake and promotion are transferlab.ops.retrain's steps, called in this process (the `transferlab intake` /
`promote` commands call the same functions); DVC runs as `dvc repro` (flows.dvc_stages). The stage to re-run
is the one dvc.yaml says makes the track's models (transferlab.ops.tracks.model_stage).

When the project has a default DVC remote (`dvc remote add -d NAME URL`), a retrain that ran ends with a
`dvc push` (DVC's Python API) of everything DVC tracks: the merged pool, the stages' outputs and the registered
model, so a second clone can `dvc pull` them; a failed push fails the run, naming the remote (the retrain itself
is committed by then and stays)."""
from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.states import Failed

from flows.dvc_stages import failure_line, repro_with_retries
from flows.lifeline import watch_parent
from flows.workspace_lock import WorkspaceBusy, lock_timeout, workspace_lock
from transferlab.ops import retrain as steps
from transferlab.ops import retrain_journal
from transferlab.ops.git import commit_files
from transferlab.ops.lineage import stage_arguments
from transferlab.ops.tracks import RetrainSetupError, model_stage, preflight
from transferlab.params import ParamsError


class RetrainFailed(RuntimeError):
    """A retrain step failed; the message is one line that says which and why."""


def _caught(fn):
    """A task that fails ends Failed with one line as its message (the flow fails with that line and rolls
    back) instead of a traceback per task and flow; an unexpected exception's traceback is logged once."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (RetrainFailed, steps.StepFailed, ParamsError, RetrainSetupError) as err:
            return Failed(message=" ".join(str(err).split()))
        except Exception as err:  # a bug in a step: the traceback goes to the log, the flow still rolls back
            get_run_logger().exception("%s crashed", fn.__name__)
            return Failed(message=f"{fn.__name__} crashed: {type(err).__name__}: {' '.join(str(err).split())}")
    return wrapper


def _ok(step, *args) -> dict:
    """Run a task; its result, or RetrainFailed with the task's one-line message when it failed."""
    state = step(*args, return_state=True)
    if not state.is_completed():
        raise RetrainFailed(state.message or f"{step.name} ended {state.name}")
    return state.result()


@task(task_run_name="preflight-{track}")
@_caught
def check(repo: str, track: str) -> dict:
    """Params, every param dvc.yaml declares, the track's set-up, the pool's class sizes and the stage that
    makes the track's models: all before the inbox is touched."""
    return {"setup": preflight(repo, track), "stage": model_stage(repo, track)}


@task(task_run_name="intake-{track}")
@_caught
def intake(repo: str, track: str, journal: str) -> dict:
    result = steps.intake(repo, track, journal)
    logger = get_run_logger()
    for r in result["batches"]:
        logger.info("batch %s: %s (%d items) → %s %s", r["batch"], r["status"], r["items"], r["moved_to"],
                    "; ".join(r["problems"]))
    return result


@task(task_run_name="dvc-add-pool")
@_caught
def track_pool(repo: str, pool: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "dvc", "add", pool], cwd=repo, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RetrainFailed(f"dvc add {pool} failed: {proc.stderr}")
    return {}


@task(task_run_name="dvc-repro-{stage}")
@_caught
def repro(repo: str, stage: str) -> dict:
    """The fine-tuning stage with its upstream: the data_roots stage hashes the pool, so DVC re-runs prepare and
    what follows only when the pool changed. The output reaches the log line by line; a transient failure
    (killed, DVC lock held) is tried once more."""
    logger = get_run_logger()
    run = repro_with_retries(stage, repo, single=False, on_line=logger.info, tries=2)
    if run.returncode:
        raise RetrainFailed(failure_line(run))
    from transferlab.ops.lineage import record_flow_run

    for ran in run.stages_run:  # for `transferlab lineage`: this flow run made the outs dvc.lock now lists
        record_flow_run(repo, ran, **this_flow_run())
    return {"stage": stage, "ran": run.ran, "seconds": round(run.seconds, 1)}


def this_flow_run() -> dict:
    from prefect.runtime import flow_run

    return {"flow_run_id": str(flow_run.id), "flow_run_name": str(flow_run.name)}


@task(task_run_name="git-commit")
def commit(repo: str, paths: list[str], message: str) -> str | None:
    """Record what made the model in git (a GTO version tag names a commit, one version per commit)."""
    return commit_files(Path(repo), paths, message)


def push_outputs(repo: Path | str) -> dict:
    """`dvc push` of every DVC-tracked output to the project's default remote, through DVC's Python API (the
    config merged from .dvc/config, config.local and the user's, as `dvc push` reads it). Returns the remote's
    name and URL (None when no default remote is set: nothing is pushed) and the number of files uploaded;
    raises RetrainFailed naming the remote, with DVC's reason, when the push fails."""
    import logging

    from dvc.repo import Repo

    errors: list[str] = []

    class _Collect(logging.Handler):  # DVC logs why a file failed to upload; UploadError only counts them
        def emit(self, record):
            errors.append(" ".join(record.getMessage().split()))

    name = url = None
    handler = _Collect(logging.ERROR)
    dvc_logger = logging.getLogger("dvc")
    dvc_logger.addHandler(handler)
    try:
        with Repo(str(repo)) as dvc_repo:
            name = dvc_repo.config["core"].get("remote")
            if not name:
                return {"remote": None, "url": None, "pushed": 0}
            url = dvc_repo.config["remote"].get(name, {}).get("url")
            pushed = dvc_repo.push(remote=name)
    except Exception as err:  # noqa: BLE001 — any failure of the push is reported as one line naming the remote
        why = " ".join(str(err).split()) or type(err).__name__
        detail = next((e for e in reversed(errors) if e and e not in why), None)
        where = f"DVC remote '{name}'" + (f" ({url})" if url else "") if name else "the DVC remote"
        raise RetrainFailed(f"dvc push to {where} failed: {why}" + (f" ({detail})" if detail else "")) from err
    finally:
        dvc_logger.removeHandler(handler)
    return {"remote": name, "url": url, "pushed": pushed}


def _push_line(pushed: dict | None) -> str:
    if pushed is None:
        return "nothing retrained: nothing to push"
    if pushed.get("error"):
        return f"FAILED: {pushed['error']}"
    if pushed["remote"] is None:
        return "no remote set: nothing pushed (`dvc remote add -d NAME URL` shares the DVC cache)"
    return f"pushed {pushed['pushed']} new file(s) to DVC remote '{pushed['remote']}' ({pushed['url']})"


@task(task_run_name="dvc-push")
@_caught
def push(repo: str) -> dict:
    """After the retrain's commits: push what DVC tracks to the default remote, if one is set (the flow's last
    lines say what it did)."""
    return push_outputs(repo)


@task(task_run_name="champion-vs-challenger-{track}")
@_caught
def promote(repo: str, track: str) -> dict:
    """Register the best new model (committing the registry) and promote it if it wins by the margin."""
    return steps.promote(repo, track, flow_run=this_flow_run())


def _batches_line(batches: list[dict]) -> str:
    if not batches:
        return "inbox empty"
    parts = [f"{b['status']} {b['batch']} ({b['items']} items" + (f": {'; '.join(b['problems'])}" if b["problems"]
                                                                    else "") + ")" for b in batches]
    return "; ".join(parts)


def _decision_line(decision: dict | None) -> str:
    if decision is None:
        return "nothing merged and a champion exists: nothing retrained"
    if not decision.get("registered", True):
        return f"{decision['reason']} (champion stays v{decision['champion_version']})"
    verdict = "PROMOTED to champion" if decision["promoted"] else "not promoted"
    return (f"challenger v{decision['challenger_version']} ({decision['challenger']}): {verdict} — "
            f"{decision['reason']}")


def publish(repo: Path, track: str, batches: list[dict], decision: dict | None, pushed: dict | None = None) -> None:
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
    lines += ["", f"DVC push: {_push_line(pushed)}."]
    create_markdown_artifact("\n".join(lines), key=f"transferlab-retrain-{track}", description="Retrain run summary")
    if decision and decision.get("registered", True):
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


def _retrain(repo: Path, track: str, logger) -> dict:
    try:
        checked = _ok(check, str(repo), track)
    except RetrainFailed as err:
        raise RetrainFailed(f"cannot retrain the {track} track: {err}") from None
    setup = checked["setup"]
    pool = setup.pool
    journal = retrain_journal.begin(repo, track, ["dvc.lock", f"{pool}.dvc", (pool.parent / ".gitignore").as_posix()])
    found = _ok(intake, str(repo), track, str(journal))
    batches, decision = found["batches"], None
    merged = [b["batch"] for b in batches if b["status"] == "merged"]
    if merged or found["champion_version"] is None:
        _ok(track_pool, str(repo), pool.as_posix())
        _ok(repro, str(repo), checked["stage"])
        commit(str(repo), ["dvc.lock", f"{pool}.dvc", (pool.parent / ".gitignore").as_posix()],
               f"retrain {track}: merged {', '.join(merged) or 'nothing'} into {pool}, re-ran the pipeline")
        retrain_journal.commit(repo, track)  # the merge is in git now: nothing left to undo
        try:
            decision = _ok(promote, str(repo), track)
        except RetrainFailed as err:
            raise RetrainFailed(f"{err} (the merged data is committed; run `transferlab promote "
                                f"--track {track}` to retry the promotion)")
        # The pool, the stages' outputs and the registered model, to the default remote; a failure is reported
        # after the summary lines below, since the retrain itself is committed by now.
        state = push(str(repo), return_state=True)
        pushed = state.result() if state.is_completed() else {"error": state.message}
    else:
        retrain_journal.commit(repo, track)
        pushed = None
    publish(repo, track, batches, decision, pushed)
    # The last lines say what happened, whatever the UI shows.
    logger.info("batches: %s", _batches_line(batches))
    logger.info("decision: %s", _decision_line(decision))
    logger.info("dvc push: %s", _push_line(pushed))
    if pushed and pushed.get("error"):
        raise RetrainFailed(f"{pushed['error']} (the retrain and the registry are committed; run `dvc push` "
                            "to retry)")
    return {"track": track, "batches": batches, "decision": decision, "push": pushed}


@flow(name="transferlab-retrain", log_prints=True)
def retrain(repo_dir: str = ".", track: str = "vision"):
    """Intake → (if anything merged, or no champion yet) dvc add + dvc repro of the track's fine-tuning →
    champion vs challenger. Returns the batches and the decision; a failure is a Failed state with one line."""
    repo = Path(repo_dir).resolve()
    logger = get_run_logger()
    watch_parent()  # a run whose `flows.serve` was killed stops instead of running on as an orphan
    try:
        with workspace_lock(repo, f"transferlab-retrain flow ({track})", lock_timeout()):
            for line in retrain_journal.rollback(repo, track):  # an earlier run died before it could roll back
                logger.warning("unfinished earlier retrain rolled back: %s", line)
            try:
                return _retrain(repo, track, logger)
            except RetrainFailed as err:
                undone = retrain_journal.rollback(repo, track)
                message = str(err) + (f" — rolled back: {'; '.join(undone)}" if undone else "")
                logger.error(message)
                return Failed(message=message)
            except BaseException:
                retrain_journal.rollback(repo, track)  # a bug or an interrupt: still leave nothing half-done
                raise
    except WorkspaceBusy as err:
        logger.error(str(err))
        return Failed(message=str(err))


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repo", default=".")
    parser.add_argument("--track", default="vision", choices=["vision", "audio"])
    args = parser.parse_args()
    state = retrain(args.repo, args.track, return_state=True)
    if state.is_failed():
        print(f"retrain failed: {state.message}", file=sys.stderr)
        sys.exit(1)
