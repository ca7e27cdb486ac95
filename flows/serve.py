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


def deployments(repo_dir: str) -> list:
    return [
        retrain.to_deployment(name="nightly-retrain", cron=NIGHTLY_RETRAIN_CRON, parameters={"repo_dir": repo_dir},
                              description="Intake → GX → merge or quarantine → dvc repro → champion vs challenger",
                              tags=["transferlab", "retrain"]),
        pipeline.to_deployment(name="weekly-sweep", cron=WEEKLY_SWEEP_CRON, parameters={"repo_dir": repo_dir},
                               description="The whole DVC pipeline, every track and sweep",
                               tags=["transferlab", "sweep"]),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", default=".", help="the project the flows run in (absolute path recommended)")
    args = parser.parse_args()
    import os

    serve(*deployments(os.path.abspath(args.repo)))
