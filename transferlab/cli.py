"""`transferlab` command line: run the pipeline, check params, inspect model cards."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import typer
from rich import box
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Reproducible transfer learning: pre-train on A, fine-tune on B, measure.",
                  no_args_is_help=True)
params_app = typer.Typer(help="Check or switch the parameter profile.", no_args_is_help=True)
app.add_typer(params_app, name="params")
console = Console()


def _run(cmd: list[str]) -> None:
    from transferlab.ops.processes import stage_env

    raise typer.Exit(subprocess.call(cmd, env=stage_env()))


@app.command()
def repro(stage: list[str] = typer.Argument(None, help="Stages to reproduce (default: all)."),
          force: bool = typer.Option(False, "--force", "-f", help="Re-run even if unchanged.")) -> None:
    """Run the DVC pipeline (`dvc repro`)."""
    _run([sys.executable, "-m", "dvc", "repro", *(stage or []), *(["--force"] if force else [])])


@app.command()
def flow(stage: list[str] = typer.Option(None, "--stage", help="Only these stages."),
         force: bool = typer.Option(False, "--force", "-f")) -> None:
    """Run the same DVC stages as a Prefect flow (temporary server unless PREFECT_API_URL is set)."""
    cmd = [sys.executable, "-m", "flows.pipeline"]
    for s in stage or []:
        cmd += ["--stage", s]
    _run(cmd + (["--force"] if force else []))


@params_app.command("check")
def params_check(path: Path = typer.Argument(Path("params.yaml")),
                 repo: Path = typer.Option(Path("."), help="The project whose dvc.yaml declares the params.")) -> None:
    """Validate a params file against the schema, every param dvc.yaml declares and the class counts of the folders
    it names; print every bad key."""
    from transferlab.params import ParamsError, load_params, read_params_file

    from transferlab.data.sizes import size_problems

    params, errors, missing = None, [], []
    try:
        missing = _undeclared(repo, read_params_file(path))
        params = load_params(path)
    except ParamsError as err:
        errors.append(str(err))
    if missing:
        errors.append(f"{path}: {len(missing)} param(s) that dvc.yaml declares are missing (DVC would stop at that "
                      "stage):\n" + "\n".join(f"  {m}" for m in missing))
    short = size_problems(params, repo) if params else []
    if short:
        errors.append(f"{path}: the data cannot supply what it asks for:\n" + "\n".join(f"  {m}" for m in short))
    if params and params.runtime.device == "cuda":  # torch is imported only to answer this
        from transferlab.system.runtime import device_problem

        errors += [f"{path}: {device_problem('cuda')}"] if device_problem("cuda") else []
    if errors:
        console.print("\n".join(errors), style="red", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    console.print(f"[green]{path}: valid[/green]")
    console.print_json(params.model_dump_json(by_alias=True))


def _undeclared(repo: Path, values: dict) -> list[str]:
    if not (repo / "dvc.yaml").exists():
        return []
    from transferlab.system.dvc_params import missing_declared_params

    return missing_declared_params(repo, values)


BACKUPS = Path(".transferlab") / "params-backups"  # git-ignored; one file per replacement, never overwritten


@params_app.command("use")
def params_use(profile: str = typer.Argument(..., help="A file in profiles/ (e.g. 'smoke'), or 'default': the "
                                                       "params.yaml of the current git commit."),
               target: Path = typer.Option(Path("params.yaml"))) -> None:
    """Write params.yaml from a profile (its changes over the schema's defaults, every key written out); the
    replaced file is kept in .transferlab/params-backups/."""
    import datetime as dt
    import tempfile

    from transferlab.params import ParamsError, load_params
    from transferlab.params.profiles import render

    if profile == "default":
        proc = subprocess.run(["git", "show", f"HEAD:./{target.as_posix()}"], capture_output=True, text=True)
        if proc.returncode != 0:
            console.print(f"[red]no committed {target} to restore: {proc.stderr.strip()}[/red]", highlight=False)
            raise typer.Exit(2)
        scratch = Path(tempfile.mkdtemp()) / target.name
        scratch.write_text(proc.stdout)
        source, label = scratch, f"{target} of git HEAD"
    else:
        source = label = Path("profiles") / f"{profile}.yaml"
        if not source.exists():
            choices = ", ".join(["default", *sorted(p.stem for p in Path("profiles").glob("*.yaml"))])
            console.print(f"[red]no profile {source} (available: {choices})[/red]", highlight=False)
            raise typer.Exit(2)
    try:
        load_params(source)
    except ParamsError as err:
        console.print(f"[red]{err}[/red]", highlight=False)
        raise typer.Exit(2)
    if profile != "default":  # a profile states only its changes; params.yaml must hold every key DVC reads
        scratch = Path(tempfile.mkdtemp()) / target.name
        scratch.write_text(render(source))
        source = scratch
    note = ""
    if target.exists():
        if target.read_bytes() == source.read_bytes():
            console.print(f"{target} already is {label}: nothing to do", highlight=False)
            return
        BACKUPS.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S%f")
        backup = BACKUPS / f"{target.name}.{stamp}"
        shutil.copy2(target, backup)
        note = f" (previous saved as {backup})"
    shutil.copy2(source, target)
    console.print(f"{target} ← {label}{note}", highlight=False)


@app.command()
def card(model_dir: Path) -> None:
    """Show a model's card: architecture, classes, frozen parts, parents, metrics. The model is loaded first: a
    missing, foreign or tampered file is one line naming it, exit status 2."""
    from transferlab.models.artifacts import ModelFileError, load_model

    try:
        _, data = load_model(model_dir)
    except ModelFileError as err:
        console.print(str(err), style="red", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    table = Table(show_header=False)
    for key in ("format", "architecture", "classes", "frozen_modules", "metrics", "code_version", "created"):
        table.add_row(key, str(data.get(key)))
    for p in data.get("parents", []):
        table.add_row(f"parent ({p.get('role')})", f"{p.get('path')}  md5={p.get('md5')}")
    console.print(table)


@app.command()
def predict(model_dir: Path = typer.Argument(..., help="A model directory (model.safetensors + card.json)."),
            paths: list[Path] = typer.Argument(..., help="Image or audio files, or folders of them."),
            top: int = typer.Option(3, help="Probabilities shown per file."),
            as_json: bool = typer.Option(False, "--json", help="One JSON object per file instead of a table.")) -> None:
    """Class and probabilities for each file, with the preprocessing the model was trained with.

    A file that cannot be read is reported with its error; the others still get predictions; the
    exit status is 1 when any file failed. A file unlike the model's training data (pixel or level
    statistics outside the ranges in its card) or a silent clip gets a warning: its label is a guess.
    Warnings alone leave the exit status 0. A model that does not load is one line, exit status 2."""
    import json

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
def lineage(path: str = typer.Argument(..., help="Any pipeline output: a model, a metrics file, a data set."),
            fmt: str = typer.Option("text", "--format", help="text | json | mermaid"),
            repo: Path = typer.Option(Path("."), help="The project root (where dvc.lock is).")) -> None:
    """Which data, params and code made this artifact: the chain of stages back to the raw inputs."""
    import json

    from transferlab.ops.lineage import render_mermaid, render_text, trace

    if fmt not in ("text", "json", "mermaid"):
        console.print(f"[red]--format must be text, json or mermaid, got {fmt!r}[/red]")
        raise typer.Exit(2)
    try:
        result = trace(repo, path)
    except (FileNotFoundError, ValueError) as err:
        console.print(f"[red]{err}[/red]")
        raise typer.Exit(2)
    out = {"text": render_text, "mermaid": render_mermaid}.get(fmt)
    print(out(result) if out else json.dumps(result.as_dict(), indent=2))


@app.command()
def models(name: str = typer.Argument(None, help="Only this registered model."),
           repo: Path = typer.Option(Path("."), help="The project root (where registry.json is)."),
           as_json: bool = typer.Option(False, "--json", help="The versions as JSON.")) -> None:
    """Registered model versions: stage (champion/challenger/archived), metrics, the data they were trained on."""
    import json

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
def report(results_md: Path = typer.Option(..., "--results-md", help="Markdown page to write (e.g. docs/results.md)."),
           repo: Path = typer.Option(Path("."), help="The project whose metrics/ and results/ are read.")) -> None:
    """Write the results page (stamp, claims with verdicts, headline numbers) from this workspace's outputs."""
    from transferlab.report.results_md import ResultsError, write_results_md

    try:
        out = write_results_md(repo, results_md)
    except ResultsError as err:
        console.print(f"[red]{err}[/red]")
        raise typer.Exit(2)
    console.print(f"wrote {out}")


@app.command()
def advise(target_accuracy: float = typer.Option(None, "--target-accuracy", min=0.0, max=1.0,
                                                 help="Also: labels per class each strategy needs for this accuracy."),
           score: str = typer.Option("logme", help="The score to rank by: logme | leep | nce | h_score."),
           per_class: int = typer.Option(None, "--per-class", help="Rank at this pool size (default: the largest)."),
           repo: Path = typer.Option(Path("."), help="The project root (where dvc.lock is)."),
           as_json: bool = typer.Option(False, "--json", help="The advice as one JSON object.")) -> None:
    """Which backbone and strategy to start from, and how many labels a target accuracy needs: the ranked
    backbones (transferability scores), the recommended strategy per target size (from the sweep if it ran, else
    from the scores) and, with --target-accuracy, a power-law extrapolation of each strategy's learning curve. A
    missing input is one line naming it and the stage that makes it, exit status 2; with --target-accuracy and no
    sweep to extrapolate, exit status 1."""
    import json

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
        _print_advice(out)
    if unanswered:
        raise typer.Exit(1)


def _print_advice(out: dict) -> None:
    def num(v, fmt="{:.3f}"):
        return "—" if v is None else fmt.format(v)

    columns = [c for c in ("logme", "leep", "nce", "h_score") if c in out["ranking"][0]]
    table = Table("rank", "backbone", *columns, title=f"Backbones ranked by {out['score']} at "
                  f"{out['per_class']}/class ({out['scores_file']})")
    for r in out["ranking"]:
        table.add_row(str(r["rank"]), r["backbone"], *(num(r[c]) for c in columns))
    console.print(table)
    for n, order in out["ranking_by_size"].items():
        console.print(f"  {n}/class: {' > '.join(order)}", highlight=False)
    if out["check"]:
        console.print("checked against the sweep (Kendall τ of score vs fine-tuned accuracy, CI over seeds): " +
                      "; ".join(f"{c['per_class']}/class " + (f"{c['tau']:+.2f} [{num(c['low'], '{:+.2f}')}, "
                                                              f"{num(c['high'], '{:+.2f}')}]"
                                                              if c["tau"] is not None else "—")
                                + f" ({c['backbones']} backbones, {c['seeds']} seeds)" for c in out["check"]),
                      highlight=False)
    table = Table("per class", "backbone", "strategy", "accuracy [CI]",
                  title=f"Recommended per target size, from the {out['recommendation_source']}")
    for r in out["recommendations"]:
        acc = "—" if r["accuracy"] is None else f"{r['accuracy']:.1%} [{r['low']:.1%}, {r['high']:.1%}]"
        table.add_row(str(r["per_class"]), r["backbone"], r["strategy"], acc)
    console.print(table)
    if out.get("recommendation_note"):
        console.print(out["recommendation_note"], highlight=False)
    if "target_accuracy" in out:
        if out.get("labels_needed_missing"):
            console.print(f"labels needed: {out['labels_needed_missing']}", style="yellow", highlight=False)
            return
        table = Table("strategy", "labels per class", "interval", "note",
                      title=f"Labels per class to reach {out['target_accuracy']:.1%} (power law, bootstrap over seeds)")
        for r in out["labels_needed"]:
            # an interval's open end: some bootstrap fits never reach the target
            span = "" if r["estimate"] is None else "–".join(num(r[k], "{:.0f}").replace("—", "∞")
                                                             for k in ("low", "high"))
            table.add_row(r["strategy"], num(r["estimate"], "{:.0f}"), span, r["message"])
        console.print(table)
        check = out.get("holdout_check")
        if check:  # how far to trust the table: the same method, checked on this workspace's largest pool
            where = f" ({check['file']}, verdict: {check['verdict']})" if check["file"] else ""
            console.print(f"held-out check of this extrapolation here{where}: {check['summary']}", highlight=False)


@app.command()
def timings(repo: Path = typer.Option(Path("."), help="The project root (where .transferlab/timings.jsonl is)."),
            as_json: bool = typer.Option(False, "--json", help="The last runs and the total as one JSON object."),
            markdown: bool = typer.Option(False, "--markdown", help="A Markdown table (for docs/results.md).")) -> None:
    """Where time goes: wall time, CPU time and peak RSS of the last run of each stage, in the order they ran, and
    the total (wall and CPU summed, RSS the largest)."""
    import json

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
def architectures() -> None:
    """List the network architectures `create_model` can build (tv:<name>: any torchvision classifier)."""
    from transferlab.models import list_families, list_models

    for name in list_models() + list_families():
        console.print(name)


def _step(step, *args, **kwargs) -> None:
    """Run an ops retrain step and print its result as one JSON line; a step that cannot run: its message in
    red, exit status 2."""
    import json

    from transferlab.ops.retrain import StepFailed

    try:
        result = step(*args, **kwargs)
    except StepFailed as err:
        console.print(str(err), style="red", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    print(json.dumps(result))


@app.command()
def intake(params_file: Path = typer.Option(Path("params.yaml"), "--params"),
           track: str = typer.Option("vision", help="vision (image batches) or audio (WAV/FLAC batches)"),
           journal: Path = typer.Option(None, help="A retrain journal to record each merge in (the retrain flow's).")
           ) -> None:
    """Validate every batch in the track's inbox (GX); merge it into the target pool, or quarantine it.

    Prints one JSON line: the pool, the model's name and champion, and each batch's fate."""
    from transferlab.ops import retrain

    _step(retrain.intake, Path("."), track, journal, params_file)


@app.command()
def promote(params_file: Path = typer.Option(Path("params.yaml"), "--params"),
            track: str = typer.Option("vision", help="vision or audio")) -> None:
    """Register the best new fine-tuned model; promote it if it beats the champion by the track's margin.

    Both are scored on the fixed test set; the registry is committed. The runs, models and test set are where
    dvc.lock says the track's fine-tuning stage (in dvc.yaml: the command with `--track TRACK` and `--models`)
    put them. A model identical to a registered version is not registered again. Prints the decision as one
    JSON line."""
    from transferlab.ops import retrain

    _step(retrain.promote, Path("."), track, params_file)


if __name__ == "__main__":
    app()
