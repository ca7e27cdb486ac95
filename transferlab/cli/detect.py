"""`transferlab detect`: wake-word detections in recordings of any length, one line each."""
from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

console = Console()


def detect(model_dir: Path = typer.Argument(..., metavar="MODEL_DIR", help="A wake-word model (classes other and the word)."),
           paths: list[Path] = typer.Argument(..., metavar="FILE", help="WAV/FLAC/OGG files of any length and rate, or folders."),
           threshold: float = typer.Option(None, "--threshold", metavar="P", help="Overrides the card's threshold."),
           hop: float = typer.Option(None, "--hop", metavar="SECONDS", help="Overrides the card's hop between windows."),
           as_json: bool = typer.Option(False, "--json", help="One JSON object per file.")) -> None:
    """Slide the model over each file: one line per detection (file, time, score), then each file's length and
    real-time factor (scoring time / audio time). A file that cannot be read (empty, truncated, NaN samples) is
    reported with its error and the others go on; the exit status is then 1. A model that cannot detect: one
    line, exit status 2."""
    from transferlab.ops.detect import DetectError, detect_files

    try:
        results, used = detect_files(model_dir, paths, threshold, hop)
    except (FileNotFoundError, ValueError, DetectError) as err:  # ModelFileError is a ValueError
        console.print(str(err), style="red", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    if as_json:
        for r in results:
            print(json.dumps(r.as_dict()))
    else:
        console.print(used, highlight=False)
        for r in results:
            if r.error:
                console.print(f"{r.path}  error: {r.error}", style="red", markup=False, highlight=False, soft_wrap=True)
                continue
            for d in r.detections:
                console.print(f"{r.path}  {d.time_s:8.2f} s  score {d.score:.3f}", markup=False, highlight=False)
            console.print(f"{r.path}: {len(r.detections)} detection(s) in {r.seconds:.1f} s of audio, real-time "
                          f"factor {r.real_time_factor:.4f}", markup=False, highlight=False)
    failed = [r for r in results if r.error]
    if failed:
        console.print(f"{len(failed)} of {len(results)} file(s) could not be read", style="red", highlight=False)
        raise typer.Exit(1)
