"""`transferlab params`: check a params file, or write params.yaml from a profile."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import typer
from rich.console import Console

from transferlab.cli.plain import PlainTyper

params_app = PlainTyper(help="Check or switch the parameter profile.", no_args_is_help=True)
console = Console()


@params_app.command("check")
def params_check(path: Path = typer.Argument(Path("params.yaml"), metavar="FILE"),
                 repo: Path = typer.Option(Path("."), metavar="DIR", help="The project whose dvc.yaml declares the params."),
                 show: bool = typer.Option(False, "--show", help="Also print the validated params, defaults filled in."),
                 as_json: bool = typer.Option(False, "--json", help="Print only the validated params, as JSON.")) -> None:
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
    if as_json:
        print(params.model_dump_json(by_alias=True, indent=2))
        return
    console.print(f"[green]{path}: valid[/green]")
    if show:
        console.print_json(params.model_dump_json(by_alias=True))


def _undeclared(repo: Path, values: dict) -> list[str]:
    if not (repo / "dvc.yaml").exists():
        return []
    from transferlab.system.dvc_params import missing_declared_params

    return missing_declared_params(repo, values)


BACKUPS = Path(".transferlab") / "params-backups"  # git-ignored; one file per replacement, never overwritten


@params_app.command("use")
def params_use(profile: str = typer.Argument(..., metavar="PROFILE", help="A file in profiles/ (e.g. 'smoke'), or 'default': the "
                                                       "params.yaml of the current git commit."),
               target: Path = typer.Option(Path("params.yaml"), metavar="FILE", help="The file to write (in the project)."),
               repo: Path = typer.Option(Path("."), metavar="DIR", help="The project root (where profiles/ is).")) -> None:
    """Write params.yaml from a profile (its changes over the schema's defaults, every key written out); the
    replaced file is kept in .transferlab/params-backups/."""
    import datetime as dt
    import tempfile

    from transferlab.params import ParamsError, load_params
    from transferlab.params.profiles import render

    name, target, profiles, backups = target, repo / target, repo / "profiles", repo / BACKUPS
    if profile == "default":
        proc = subprocess.run(["git", "show", f"HEAD:./{name.as_posix()}"], capture_output=True, text=True, cwd=repo)
        if proc.returncode != 0:
            console.print(f"[red]no committed {target} to restore: {proc.stderr.strip()}[/red]", highlight=False)
            raise typer.Exit(2)
        scratch = Path(tempfile.mkdtemp()) / target.name
        scratch.write_text(proc.stdout)
        source, label = scratch, f"{name} of git HEAD"
    else:
        source, label = profiles / f"{profile}.yaml", Path("profiles") / f"{profile}.yaml"
        if not source.exists():
            choices = ", ".join(["default", *sorted(p.stem for p in profiles.glob("*.yaml"))])
            console.print(f"[red]no profile {label} (available: {choices})[/red]", highlight=False)
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
            console.print(f"{name} already is {label}: nothing to do", highlight=False)
            return
        backups.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S%f")
        backup = backups / f"{target.name}.{stamp}"
        shutil.copy2(target, backup)
        note = f" (previous saved as {backup.relative_to(repo)})"
    shutil.copy2(source, target)
    console.print(f"{name} ← {label}{note}", highlight=False)
