"""The scheduled deployments, declared in code: a nightly retrain and a weekly full pipeline (all sweeps).

    .venv/bin/python -m flows.serve            # registers both with the server in PREFECT_API_URL and runs them

Each scheduled run executes in a subprocess of this long-running process (Prefect's `serve`)."""
from __future__ import annotations

import argparse

from prefect import serve

from flows.pipeline import pipeline
from flows.retrain import retrain

NIGHTLY_RETRAIN_CRON = "0 2 * * *"  # 02:00 every day: new labelled data from the inbox
WEEKLY_SWEEP_CRON = "0 3 * * 0"  # 03:00 on Sundays: every stage, every sweep (DVC skips what did not change)


def deployments(repo_dir: str, tracks: tuple[str, ...] = ("vision",)) -> list:
    """One nightly retrain per track (named nightly-retrain, nightly-retrain-audio) and the weekly sweep."""
    return [
        *(retrain.to_deployment(name="nightly-retrain" + ("" if track == "vision" else f"-{track}"),
                                cron=NIGHTLY_RETRAIN_CRON, parameters={"repo_dir": repo_dir, "track": track},
                                description=f"{track}: intake → GX → merge or quarantine → dvc repro → "
                                            "champion vs challenger", tags=["transferlab", "retrain", track])
          for track in tracks),
        pipeline.to_deployment(name="weekly-sweep", cron=WEEKLY_SWEEP_CRON, parameters={"repo_dir": repo_dir},
                               description="The whole DVC pipeline, every track and sweep",
                               tags=["transferlab", "sweep"]),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", default=".", help="the project the flows run in (absolute path recommended)")
    parser.add_argument("--track", action="append", choices=["vision", "audio"],
                        help="retrain this track nightly (repeat; default: vision). Audio needs "
                             "audio.prepare.target.kind: folder")
    args = parser.parse_args()
    import os

    serve(*deployments(os.path.abspath(args.repo), tuple(args.track or ["vision"])))
