"""The scheduled deployments, declared in code: a nightly retrain per track and a weekly full pipeline
(all sweeps).

    .venv/bin/python -m flows.serve --repo /abs/path/to/project     # register with PREFECT_API_URL, run them
    .venv/bin/python -m flows.serve --repo ... --track vision --track audio
    .venv/bin/python -m flows.serve --repo ... --interval 30         # every deployment every 30 s (demo/test)
    TRANSFERLAB_SCHEDULE_INTERVAL=30 .venv/bin/python -m flows.serve --repo ...   # the same, from the env
    .venv/bin/python -m flows.serve --repo ... --only nightly-retrain   # register just that one

Only deployments that can run on the project are registered; each one skipped is printed with its reason
("skipped nightly-retrain: retraining the vision track needs prepare.target.kind: imagefolder ..."):

- every deployment needs the project's params.yaml to load (otherwise nothing is registered and the command
  exits non-zero with the parameter errors) and a dvc.yaml (the flows run its stages);
- a nightly retrain needs what the retrain flow checks before it touches the inbox
  (transferlab.ops.tracks.preflight): its track set up for retraining (vision: `prepare.target.kind:
  imagefolder` with a root; audio: `audio.prepare.target.kind: folder`), every param dvc.yaml declares present
  in params.yaml, and a pool that can fill the largest pool size.

If nothing is left to register the command exits non-zero.

Schedules: nightly retrain at 02:00 every day, weekly sweep at 03:00 on Sundays (cron, server time zone UTC).
`--interval SECONDS` or the env var TRANSFERLAB_SCHEDULE_INTERVAL (seconds; the option wins) replaces every
cron with an interval schedule of that many seconds: for demos and tests of the scheduler, not for production
(a retrain or sweep that outlasts the interval gets the next run queued behind it on the workspace lock).

Each scheduled run executes in a subprocess of this long-running process (Prefect's `serve`). Runs never pile
up: `serve` runs one flow run at a time, and a deployment whose previous run is still going has its next run
cancelled ("Deployment concurrency limit reached") instead of queued, so a sweep that outlasts its interval is
skipped, not stacked; a retrain and a sweep that fall due together run one after the other. Stopping `serve`
(SIGTERM, Ctrl-C) cancels the run in progress and stops its stage; if `serve` is killed outright, the run
notices its parent is gone within a second, stops its stage and ends Crashed (flows.lifeline): no run is
left Running and no stage runs on as an orphan."""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from flows.pipeline import pipeline
from flows.retrain import retrain

NIGHTLY_RETRAIN_CRON = "0 2 * * *"  # 02:00 every day: new labelled data from the inbox
WEEKLY_SWEEP_CRON = "0 3 * * 0"  # 03:00 on Sundays: every stage, every sweep (DVC skips what did not change)
INTERVAL_ENV = "TRANSFERLAB_SCHEDULE_INTERVAL"
TRACKS = ("vision", "audio")


@dataclass(frozen=True)
class Skipped:
    name: str
    reason: str

    def __str__(self) -> str:
        return f"skipped {self.name}: {self.reason}"


def retrain_name(track: str) -> str:
    return "nightly-retrain" + ("" if track == "vision" else f"-{track}")


def schedule_interval(value: str | float | None = None) -> float | None:
    """Seconds between runs instead of the crons: `value` (the --interval option) or else the env var; None
    when neither is set. Raises ValueError when it is not a positive number."""
    raw = value if value is not None else os.environ.get(INTERVAL_ENV) or None
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"schedule interval must be a number of seconds, got {raw!r}") from None
    if not seconds > 0:
        raise ValueError(f"schedule interval must be a positive number of seconds, got {raw!r}")
    return seconds


def _schedule(cron: str, interval: float | None) -> dict:
    """The schedule, and at most one run of the deployment at a time: a run that falls due while the previous
    one is still going is cancelled (skipped), not queued behind the workspace lock."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy

    return {**({"interval": interval} if interval else {"cron": cron}),
            "concurrency_limit": ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW)}


def plan(repo_dir: str | Path, tracks: tuple[str, ...] = ("vision",),
         interval: float | None = None) -> tuple[list, list[Skipped]]:
    """The deployments whose preconditions hold on the project in repo_dir, and those skipped with why.

    Raises transferlab.params.ParamsError when the project's params.yaml does not load: then nothing can run."""
    # Imported here, not at module level: `import flows.serve` stays light (no pydantic schema build) and a
    # tracks module that pulls in the intake checks cannot drag torch into every importer of flows.
    from transferlab.ops.tracks import RetrainSetupError, preflight
    from transferlab.params import load_params

    repo = str(Path(repo_dir).resolve())
    params = load_params(Path(repo) / "params.yaml")
    deployments, skipped = [], []
    if not (Path(repo) / "dvc.yaml").is_file():  # every deployment runs DVC stages of this project
        reason = f"{repo} has no dvc.yaml: there are no DVC stages to run"
        return [], [Skipped(name, reason) for name in [*map(retrain_name, dict.fromkeys(tracks)), "weekly-sweep"]]
    for track in dict.fromkeys(tracks):  # each track once, in the order given
        name = retrain_name(track)
        try:  # what the retrain itself checks before it touches the inbox: params, declared params, the pool
            preflight(repo, track)
        except RetrainSetupError as err:
            skipped.append(Skipped(name, str(err)))
            continue
        deployments.append(retrain.to_deployment(
            name=name, **_schedule(NIGHTLY_RETRAIN_CRON, interval), parameters={"repo_dir": repo, "track": track},
            description=f"{track}: intake → GX → merge or quarantine → dvc repro → champion vs challenger",
            tags=["transferlab", "retrain", track]))
    deployments.append(pipeline.to_deployment(
        name="weekly-sweep", **_schedule(WEEKLY_SWEEP_CRON, interval), parameters={"repo_dir": repo},
        description="The whole DVC pipeline, every track and sweep", tags=["transferlab", "sweep"]))
    return deployments, skipped


def deployments(repo_dir: str, tracks: tuple[str, ...] = ("vision",), interval: float | None = None) -> list:
    """The deployments that can run (see plan); the skipped ones are dropped silently."""
    return plan(repo_dir, tracks, interval)[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.serve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", default=".", help="the project the flows run in (absolute path recommended)")
    parser.add_argument("--track", action="append", choices=list(TRACKS),
                        help="retrain this track nightly (repeat; default: vision). Audio needs "
                             "audio.prepare.target.kind: folder")
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="serve only this deployment (repeat; e.g. nightly-retrain): the others are not "
                             "registered")
    parser.add_argument("--interval", type=float, metavar="SECONDS",
                        help=f"run every deployment every SECONDS instead of its cron (default: ${INTERVAL_ENV}, "
                             "else the crons)")
    args = parser.parse_args(argv)
    from transferlab.params import ParamsError

    try:
        interval = schedule_interval(args.interval)
    except ValueError as err:
        parser.error(f"--interval / {INTERVAL_ENV}: {err}")
    try:
        ready, skipped = plan(args.repo, tuple(args.track or ["vision"]), interval)
    except ParamsError as err:
        print(f"flows.serve: nothing registered, the project's params do not load:\n{err}", file=sys.stderr)
        return 2
    if args.only:
        known = {d.name for d in ready} | {s.name for s in skipped}
        unknown = sorted(set(args.only) - known)
        if unknown:
            parser.error(f"--only: no deployment named {', '.join(unknown)} (there are: {', '.join(sorted(known))})")
        ready = [d for d in ready if d.name in args.only]
        skipped = [s for s in skipped if s.name in args.only]
    for s in skipped:
        print(s, flush=True)
    if not ready:
        print("flows.serve: no deployment can run on this project; nothing to serve", file=sys.stderr)
        return 2
    when = f"every {interval:g} s" if interval else "on their cron schedules"
    print(f"serving {', '.join(d.name for d in ready)} ({when})", flush=True)
    _serve(ready)
    return 0


def _serve(ready: list) -> None:
    """Prefect's `serve`, with one flow run at a time (they share one workspace) and a shutdown that works:
    Prefect 3.8.8's SIGTERM handler calls the runner's async stop without awaiting it, so the run in progress
    was killed but left Running on the server. Here SIGTERM and Ctrl-C stop the runner for real: the run in
    progress is cancelled (its stage stopped, its state Cancelled), then the schedules are paused."""
    import asyncio
    import signal

    from prefect.runner import Runner

    runner = Runner(pause_on_shutdown=True, limit=1)
    for deployment in ready:
        runner.add_deployment(deployment)
    stopping: list = []

    def stop(*_) -> None:
        if not stopping and runner.started:
            print("flows.serve: stopping: cancelling the run in progress, pausing the schedules", flush=True)
            stopping.append(asyncio.get_running_loop().create_task(runner.astop()))

    runner.handle_sigterm = stop  # Runner.start installs it for SIGTERM
    signal.signal(signal.SIGINT, stop)
    asyncio.run(runner.start())


if __name__ == "__main__":
    sys.exit(main())
