"""One thin entry point per DVC stage (`python -m stages.X`)."""
import importlib.util
import sys

# dvc.yaml says `python`: the first one on PATH. When that is not the project's environment, say so in one
# line instead of a ModuleNotFoundError from deep inside an import.
if importlib.util.find_spec("torch") is None:
    sys.exit(f"error: {sys.executable} (the `python` on PATH) is not the project's environment: it has no torch. "
             "Activate it first: `. .venv/bin/activate` (after `make repro` or `make setup`).")
