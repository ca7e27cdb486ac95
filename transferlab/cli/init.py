"""`transferlab init`: one command from a folder of labelled images to a running project."""
from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

console = Console()


def init_command(
        folder: str = typer.Argument(..., metavar="FOLDER", help="Labelled images, a folder per class (in the project)."),
        test: str = typer.Option(None, "--test", metavar="FOLDER",
                                 help="A fixed test set, the same classes (default: 20 per class held out)."),
        backbone: str = typer.Option(None, "--backbone", metavar="SPEC",
                                     help="Fine-tune from it: tv:ARCH[:WEIGHTS], timm:NAME or file:ARCH:PATH."),
        inbox: str = typer.Option(None, "--inbox", metavar="DIR", help="Where new labelled batches arrive (retrain)."),
        name: str = typer.Option(None, "--name", metavar="NAME", help="The registered model's name (with --inbox)."),
        run: bool = typer.Option(False, "--run", help="Then run what `transferlab advise` reads."),
        as_json: bool = typer.Option(False, "--json", help="Print what was chosen and written as one JSON object "
                                                            "(DVC's output of --run goes to stderr)."),
        repo: Path = typer.Option(Path("."), metavar="DIR", help="The project root (where dvc.yaml is).")) -> None:
    """Set up the project for FOLDER: the params it needs in params.yaml (pool sizes from the class counts, the
    backbone, the inbox), the folders under DVC, and one git commit of exactly what was written. With --run,
    `dvc repro` of the fine-tuning sweep and the checks advice reads; source pre-training is not re-run for new
    target data. A folder or option that cannot work is one line naming it, exit status 2, nothing written."""
    from transferlab.ops.init import RUN_STAGES, InitError, apply, plan
    from transferlab.ops.init import run as repro

    try:
        steps = plan(repo, folder, test, backbone, inbox, name)
        written = apply(repo, steps)
    except InitError as err:
        console.print(str(err), style="red", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    following = "transferlab advise" if run else f"dvc repro {' '.join(RUN_STAGES)} (or init --run), then transferlab advise"
    if not as_json:
        for line in steps.said:
            console.print(line, highlight=False)
        console.print(f"wrote and committed: {', '.join(written)}", highlight=False)
    status = repro(repo, quiet_stdout=as_json) if run else 0
    if as_json:
        print(json.dumps({"chose": steps.said, "committed": written, "ran": RUN_STAGES if run else [],
                          "exit_status": status, "next": following}))
    elif not status:
        console.print(f"next: {following}", highlight=False)
    if status:
        raise typer.Exit(status)
