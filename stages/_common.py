"""What every stage shares: argument parsing, typed params, runtime set-up, clean failures."""
from __future__ import annotations

import argparse
import inspect
import os
import sys
from pathlib import Path
from typing import Callable

from transferlab.system.errors import DataError
from transferlab.system.openlineage import StageRunEvents
from transferlab.system.parallel import SchedulerLost
from transferlab.params import Params, ParamsError, load_params
from transferlab.system.timings import StageTimer


class StageError(RuntimeError):
    """A stage cannot go on; the message says why."""


def require_validated(result: str | Path, refusing: str) -> None:
    """Stop unless the Great Expectations result at `result` passed."""
    from transferlab.system.io import read_json

    if not read_json(result).get("success"):
        raise StageError(f"{result}: the data did not pass validation; refusing to {refusing}")


def publish(metrics_path: str | Path, metrics: dict, claims: list = ()) -> dict:
    """An experiment stage's last step: its metrics file, and every claim it judged on stdout (the outputs,
    claims.json among them, are already written). Stages whose claims the report judges pass none."""
    from transferlab.system.io import write_json

    write_json(metrics_path, metrics)
    for c in claims:
        print(f"  [{c.verdict}] {c.statement} — {c.evidence}")
    return metrics


def stage_main(description: str, paths: dict[str, str], run: Callable[..., object], argv: list[str] | None = None,
               repeated: tuple[str, ...] = (), optional: tuple[str, ...] = (), device: str | None = None) -> None:
    """Parse `--params` and each declared path (`repeated` ones may be given several times, `optional` ones
    left out), load params first (fail before any work), then run(params, args). A `run` with a third parameter
    trains or fans out jobs: it gets the stage's runtime context, built here once from `runtime.*` (`device`
    overrides runtime.device: small networks that train best as CPU processes)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml", type=Path)
    for name, help_text in paths.items():
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, required=name not in optional, help=help_text,
                            action="append" if name in repeated else None)
    args = parser.parse_args(argv)
    job = os.environ.get("DVC_STAGE") or Path(sys.argv[0]).stem
    # from here on the run is timed (into .transferlab/timings.jsonl); argv=None means a stage process of its own
    timer, status = StageTimer(job, whole_process=argv is None), "failed"
    try:
        events = StageRunEvents(job, [args.params, *_paths([getattr(args, name) for name in paths])])
        events.start()
        try:
            params = load_params(args.params)
            unwritable = unwritable_outputs()
            if unwritable:  # before any work: found only at the end, a whole stage's work would be lost
                raise StageError("cannot write " + "; ".join(unwritable))
            if params.runtime.device == "cuda":  # refused before any work, not after prepare and validate ran
                from transferlab.system.runtime import device_problem

                if device_problem("cuda"):
                    raise StageError(device_problem("cuda"))
            if len(inspect.signature(run).parameters) > 2:
                from transferlab.system.runtime import configure

                run(params, args, configure(params.runtime, device))
            else:
                run(params, args)
        except (ParamsError, DataError, StageError, FileNotFoundError, SchedulerLost) as err:
            events.fail(str(err))
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        except BaseException as err:  # a crash or a non-zero exit (e.g. failed validation) is a FAIL too
            events.fail(f"{type(err).__name__}: {err}")
            raise
        events.complete()
        status = "ok"
    finally:
        timer.record(status)


def unwritable_outputs(every_stage: bool = False) -> list[str]:
    """Where this DVC stage's outputs (or, with every_stage, every stage's) and the DVC cache go, the folders that
    refuse a new file (read-only file system, permissions), each with the reason. Empty outside `dvc repro`."""
    import tempfile

    import yaml

    stage = os.environ.get("DVC_STAGE", "").split("@")[0]
    root = Path(os.environ.get("DVC_ROOT", "."))
    try:
        stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
        specs = list(stages.values()) if every_stage and stage else [stages[stage]]
    except (OSError, KeyError, TypeError, AttributeError, yaml.YAMLError):
        return []
    outs = [next(iter(o)) if isinstance(o, dict) else o for spec in specs for key in ("outs", "metrics", "plots")
            for o in (spec.get(key) or [])]
    # A templated out ("models/${item.name}") is checked where its fixed part ends.
    folders = {(root / str(o).split("${")[0]).parent for o in outs} | {root / ".dvc" / "cache"}
    problems = []
    for folder in sorted(folders):
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as err:
            problems.append(f"{os.path.relpath(folder, root)}/ ({err.strerror or err})")
    return sorted(set(problems))


def _paths(values: list) -> list[Path]:
    """The file-system paths among a stage's arguments (NAME=PATH pairs included), for lineage events."""
    flat = [v for value in values for v in (value if isinstance(value, list) else [value])]
    out = []
    for v in flat:
        v = str(v).split("=", 1)[-1]
        if "/" in v or Path(v).exists():
            out.append(Path(v))
    return list(dict.fromkeys(out))


def parse_backbones(items: list[str]) -> dict[str, Path]:
    """'NAME=PATH' pairs, the first being the main backbone (here, not in stages.finetune, so that stages which
    only read model cards do not import the training code)."""
    out: dict[str, Path] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise StageError(f"--backbone expects NAME=PATH, got {item!r}")
        out[name] = Path(path)
    return out


def own_backbones(params: Params, items: list[str] | None, curve: str | Path | None) -> dict[str, Path]:
    """Our own vision backbones: the --backbone NAME=DIR pairs, then under `curve` the source-size curve's (src-<n>
    for each pretrain.source_sizes) and the permuted-pixel control."""
    from transferlab.params import curve_backbones

    own = parse_backbones(items or [])
    if curve is not None:
        own.update({name: Path(curve) / name for name in curve_backbones(params.pretrain.source_sizes)})
    return own


def track_backbones(own: dict[str, Path], imported: str | Path, track: str, main: str) -> dict[str, Path]:
    """The track's own backbones and its imported ones (import_backbones' manifest), the main one first."""
    from transferlab.system.io import read_json

    manifest = read_json(Path(imported) / "manifest.json")
    backbones = {**own, **{name: Path(e["dir"]) for name, e in manifest.items() if e["track"] == track}}
    if main not in backbones:
        raise StageError(f"main_backbone {main!r} is none of the {track} backbones ({', '.join(backbones)}); "
                         f"imported: {', '.join(manifest) or 'none'} ({Path(imported) / 'manifest.json'})")
    return {main: backbones[main], **{n: p for n, p in backbones.items() if n != main}}
