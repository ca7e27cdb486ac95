"""What every stage shares: argument parsing, typed params, runtime set-up, clean failures."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from transferlab.data.sources import DataError
from transferlab.params import Params, ParamsError, load_params


class StageError(RuntimeError):
    """A stage cannot go on; the message says why."""


def stage_main(description: str, paths: dict[str, str], run: Callable[[Params, argparse.Namespace], object],
               argv: list[str] | None = None, repeated: tuple[str, ...] = ()) -> None:
    """Parse `--params` and each declared path (`repeated` ones may be given several times), load params
    first (fail before any work), then run."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml", type=Path)
    for name, help_text in paths.items():
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, required=True, help=help_text,
                            action="append" if name in repeated else None)
    args = parser.parse_args(argv)
    try:
        params = load_params(args.params)
        run(params, args)
    except (ParamsError, DataError, StageError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
