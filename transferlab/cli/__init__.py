"""The `transferlab` command line: run the pipeline, check params, inspect model cards, advise, retrain."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from transferlab.cli.advice import print_advice
from transferlab.cli.card import card
from transferlab.cli.detect import detect
from transferlab.cli.init import init_command
from transferlab.cli.params import params_app
from transferlab.cli.plain import PlainTyper

app = PlainTyper(help="Reproducible transfer learning: pre-train on A, fine-tune on B, measure.", no_args_is_help=True)
app.add_typer(params_app, name="params")
app.command("init")(init_command)
app.command("card")(card)
app.command("detect")(detect)
console = Console()


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"transferlab {version('transferlab')}")
        except PackageNotFoundError:  # run from a checkout that was never installed
            print("transferlab (not installed)")
        raise typer.Exit()


@app.callback()
def main(_: bool = typer.Option(False, "--version", callback=_version, is_eager=True, metavar="",
                                help="Print the version and exit.")) -> None:
    """Reproducible transfer learning: pre-train on A, fine-tune on B, measure."""


def _run(cmd: list[str], repo: Path) -> None:
    from transferlab.ops.processes import stage_env

    raise typer.Exit(subprocess.call(cmd, cwd=repo, env=stage_env()))


@app.command()
def repro(stage: list[str] = typer.Argument(None, metavar="STAGE", help="Stages to reproduce (default: all)."),
          force: bool = typer.Option(False, "--force", "-f", help="Re-run even if unchanged."),
          repo: Path = typer.Option(Path("."), metavar="DIR", help="The project root (where dvc.yaml is).")) -> None:
    """Run the DVC pipeline (`dvc repro`)."""
    _run([sys.executable, "-m", "dvc", "repro", *(stage or []), *(["--force"] if force else [])], repo)


@app.command()
def flow(stage: list[str] = typer.Option(None, "--stage", metavar="STAGE", help="Only these stages."),
         force: bool = typer.Option(False, "--force", "-f", help="Re-run even if unchanged."),
         repo: Path = typer.Option(Path("."), metavar="DIR", help="The project root (where dvc.yaml is).")) -> None:
    """Run the same DVC stages as a Prefect flow (temporary server unless PREFECT_API_URL is set)."""
    cmd = [sys.executable, "-m", "flows.pipeline"]
    for s in stage or []:
        cmd += ["--stage", s]
    _run(cmd + (["--force"] if force else []), repo)


@app.command()
def predict(model_dir: Path = typer.Argument(..., metavar="MODEL_DIR", help="A model directory (model.safetensors + card.json)."),
            paths: list[Path] = typer.Argument(..., metavar="FILE", help="Image or audio files, or folders of them."),
            top: int = typer.Option(3, metavar="N", help="Probabilities shown per file."),
            as_json: bool = typer.Option(False, "--json", help="One JSON object per file instead of a table.")) -> None:
    """Class and probabilities for each file, with the preprocessing the model was trained with.

    A file that cannot be read is reported with its error; the others still get predictions; the
    exit status is 1 when any file failed. A file unlike the model's training data (pixel or level
    statistics outside the ranges in its card) or a silent clip gets a warning: its label is a guess.
    Warnings alone leave the exit status 0. A model that does not load is one line, exit status 2."""

    from rich.markup import escape

    from transferlab.system.io import read_json
    from transferlab.ops.predict import checks_inputs, predict_files

    try:
        results = predict_files(model_dir, paths)
    except (FileNotFoundError, ValueError) as err:  # ModelFileError among them
        console.print(str(err), style="red", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    checked = checks_inputs(read_json(model_dir / "card.json"))
    warned = [r for r in results if r.warnings]
    if as_json:
        for r in results:
            print(json.dumps(r.as_dict()))
    else:
        columns = ["file", "class", "probabilities"] + (["warning"] if warned else [])
        table = Table(*columns)
        for r in results:
            if r.error:
                table.add_row(escape(r.path), "[red]error[/red]", f"[red]{escape(r.error)}[/red]")
            else:
                best = sorted(r.probabilities.items(), key=lambda kv: -kv[1])[:top]
                note = [f"[yellow]{escape('; '.join(r.warnings))}[/yellow]"] if warned else []
                table.add_row(escape(r.path), escape(r.label), escape(", ".join(f"{c}: {v:.3f}" for c, v in best)), *note)
        console.print(table)
        if warned:
            console.print(f"[yellow]{len(warned)} of {len(results)} file(s) are unlike the model's training data: "
                          "their labels are unreliable[/yellow]", highlight=False)
        elif not checked:
            console.print("no training statistics in this model's card: inputs were not checked against the "
                          "training data", highlight=False)
    failed = [r for r in results if r.error]
    if failed:
        console.print(f"[red]{len(failed)} of {len(results)} file(s) could not be read[/red]", highlight=False)
        raise typer.Exit(1)


@app.command()
def lineage(path: str = typer.Argument(..., metavar="OUTPUT", help="Any pipeline output: a model, a metrics file, a data set."),
            fmt: str = typer.Option("text", "--format", metavar="text|json|mermaid", help="How to print it."),
            as_json: bool = typer.Option(False, "--json", help="Same as --format json."),
            code: bool = typer.Option(False, "--code", help="List every code file a stage depends on, not one hash."),
            repo: Path = typer.Option(Path("."), metavar="DIR", help="The project root (where dvc.lock is).")) -> None:
    """Which data, params and code made this artifact: the chain of stages back to the raw inputs."""
    fmt = "json" if as_json else fmt

    from transferlab.ops.lineage import render_mermaid, render_text, trace

    if fmt not in ("text", "json", "mermaid"):
        console.print(f"[red]--format must be text, json or mermaid, got {fmt!r}[/red]")
        raise typer.Exit(2)
    try:
        result = trace(repo, path)
    except (FileNotFoundError, ValueError) as err:
        console.print(f"[red]{err}[/red]")
        raise typer.Exit(2)
    if fmt == "text":
        print(render_text(result, code=code))
    else:
        print(render_mermaid(result) if fmt == "mermaid" else json.dumps(result.as_dict(), indent=2))


@app.command()
def models(name: str = typer.Argument(None, metavar="NAME", help="Only this registered model."),
           repo: Path = typer.Option(Path("."), metavar="DIR", help="The project root (where registry.json is)."),
           as_json: bool = typer.Option(False, "--json", help="The versions as JSON.")) -> None:
    """Registered model versions: stage (champion/challenger/archived), metrics, the data they were trained on."""

    from transferlab.ops import registry

    rows = registry.versions(repo, name)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        console.print(f"no model versions registered in {repo / registry.REGISTRY_FILE} (the retrain flow registers them)")
        return
    table = Table("name", "version", "stage", "metrics", "data md5", "code", "registered", "path")
    for column in table.columns:
        column.overflow = "fold"  # never cut a hash or a path short
    for v in rows:
        table.add_row(v["name"], str(v["version"]), v["stage"], ", ".join(f"{k}={x}" for k, x in v["metrics"].items()),
                      v["data_md5"], str(v.get("code_version"))[:12], v["registered"], v["path"])
    console.print(table)


@app.command()
def report(results_md: Path = typer.Option(..., "--results-md", metavar="FILE", help="Markdown page to write (e.g. docs/results.md)."),
           repo: Path = typer.Option(Path("."), metavar="DIR", help="The project whose metrics/ and results/ are read.")) -> None:
    """Write the results page (stamp, claims with verdicts, headline numbers) from this workspace's outputs."""
    from transferlab.report.results_md import ResultsError, write_results_md

    try:
        out = write_results_md(repo, results_md)
    except ResultsError as err:
        console.print(f"[red]{err}[/red]")
        raise typer.Exit(2)
    console.print(f"wrote {out}")


@app.command()
def advise(target_accuracy: float = typer.Option(None, "--target-accuracy", metavar="ACCURACY", min=0.0, max=1.0,
                                                 help="Also: labels per class each strategy needs for this accuracy."),
           score: str = typer.Option("logme", metavar="logme|leep|nce|h_score", help="The score to rank by: logme | leep | nce | h_score."),
           per_class: int = typer.Option(None, "--per-class", metavar="N", help="Rank at this pool size (default: the largest)."),
           repo: Path = typer.Option(Path("."), metavar="DIR", help="The project root (where dvc.lock is)."),
           as_json: bool = typer.Option(False, "--json", help="The advice as one JSON object.")) -> None:
    """Which backbone and strategy to start from, and how many labels a target accuracy needs: the ranked
    backbones (transferability scores), the recommended strategy per target size (from the sweep if it ran, else
    from the scores) and, with --target-accuracy, a power-law extrapolation of each strategy's learning curve. A
    missing input is one line naming it and the stage that makes it, exit status 2; with --target-accuracy and no
    sweep to extrapolate, exit status 1."""

    from transferlab.ops.advise import AdviceError
    from transferlab.ops.advise import advise as gather

    try:
        out = gather(repo, score, per_class, target_accuracy)
    except AdviceError as err:
        console.print(str(err), style="red", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    unanswered = target_accuracy is not None and not any(r["estimate"] is not None or r["reachable"] is False
                                                         for r in out.get("labels_needed", []))
    if as_json:
        print(json.dumps(out, indent=2))
    else:
        print_advice(out, console)
    if unanswered:
        raise typer.Exit(1)


@app.command()
def timings(repo: Path = typer.Option(Path("."), metavar="DIR", help="The project root (where .transferlab/timings.jsonl is)."),
            as_json: bool = typer.Option(False, "--json", help="The last runs and the total as one JSON object."),
            markdown: bool = typer.Option(False, "--markdown", help="A Markdown table (for docs/results.md).")) -> None:
    """Where time goes: wall time, CPU time and peak RSS of the last run of each stage, in the order they ran, and
    the total (wall and CPU summed, RSS the largest)."""

    from transferlab.system import timings as tm

    path = repo / tm.TIMINGS_FILE
    if not path.exists():
        console.print(f"[red]no timings file at {path}: run a stage (`dvc repro`) first; each stage appends its "
                      "timing there[/red]", highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    records, skipped = tm.read_timings(path)
    rows = tm.last_runs(records)
    if skipped:  # on stderr, so that --json and --markdown stay clean on stdout
        print(f"warning: {path}: skipped {skipped} unreadable line(s)", file=sys.stderr)
    if as_json:
        print(json.dumps({"file": str(path), "stages": rows, "total": tm.total(rows), "skipped_lines": skipped},
                         indent=2))
        return
    if markdown:
        print(tm.markdown_table(rows), end="")
        return
    table = Table("stage", "wall s", "startup s", "CPU s", "RSS MiB", "status", "started UTC", box=box.SIMPLE_HEAD,
                  show_edge=False, pad_edge=False, collapse_padding=True, title_justify="left",
                  title=f"last run of each stage ({path}); total: wall and CPU summed, peak RSS the largest")
    for i, column in enumerate(table.columns):
        column.no_wrap = True
        column.justify = "right" if i in (1, 2, 3, 4) else "left"
    for cells in tm.table_rows(rows):
        table.add_row(*cells[:6], cells[6][5:16])  # started: MM-DD hh:mm
    table.add_section()
    t = tm.total(rows)
    table.add_row("total", *tm.total_row(rows)[1:4], f"{t['peak_rss_mib']:.0f}", "ok" if not t["failed"] else
                  f"{t['failed']} bad", f"{t['stages']} stages", style="bold")
    console.print(table)


@app.command()
def architectures(as_json: bool = typer.Option(False, "--json", help="The names as a JSON list.")) -> None:
    """List the network architectures `create_model` can build (tv:<name>: any torchvision classifier)."""
    from transferlab.models import list_families, list_models

    names = list_models() + list_families()
    if as_json:
        print(json.dumps(names))
        return
    for name in names:
        console.print(name)


def _step(step, *args, **kwargs) -> None:
    """Run an ops retrain step and print its result as one JSON line; a step that cannot run: its message in
    red, exit status 2."""

    from transferlab.ops.retrain import StepFailed

    try:
        result = step(*args, **kwargs)
    except StepFailed as err:
        console.print(str(err), style="red", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    print(json.dumps(result))


@app.command()
def intake(params_file: Path = typer.Option(Path("params.yaml"), "--params", metavar="FILE"),
           track: str = typer.Option("vision", metavar="vision|audio", help="vision (image batches) or audio (WAV/FLAC batches)"),
           journal: Path = typer.Option(None, metavar="FILE", help="A retrain journal to record each merge in (the retrain flow's)."),
           repo: Path = typer.Option(Path("."), metavar="DIR", help="The project root (where dvc.yaml is).")) -> None:
    """Validate every batch in the track's inbox (GX); merge it into the target pool, or quarantine it.

    Prints one JSON line: the pool, the model's name and champion, and each batch's fate."""
    from transferlab.ops import retrain

    _step(retrain.intake, repo, track, journal, repo / params_file)


@app.command()
def promote(params_file: Path = typer.Option(Path("params.yaml"), "--params", metavar="FILE"),
            track: str = typer.Option("vision", metavar="vision|audio", help="vision or audio"),
            repo: Path = typer.Option(Path("."), metavar="DIR", help="The project root (where dvc.yaml is).")) -> None:
    """Register the best new fine-tuned model; promote it if it beats the champion by the track's margin.

    Both are scored on the fixed test set; the registry is committed. The runs, models and test set are where
    dvc.lock says the track's fine-tuning stage (in dvc.yaml: the command with `--track TRACK` and `--models`)
    put them. A model identical to a registered version is not registered again. Prints the decision as one
    JSON line."""
    from transferlab.ops import retrain

    _step(retrain.promote, repo, track, repo / params_file)

