"""The retrain's own steps besides DVC: intake of a track's inbox, and champion vs challenger with the
models the track's stage made. `transferlab intake` / `transferlab promote` and the retrain flow both call
these (neither shells into the other); each returns a JSON-ready dict and raises StepFailed, saying why, when
the project or the data do not allow the step."""
from __future__ import annotations

from pathlib import Path

from transferlab.params import ParamsError, load_params
from transferlab.ops import registry
from transferlab.ops.git import commit_files
from transferlab.ops.lineage import stage_arguments
from transferlab.ops.tracks import RetrainSetupError, RetrainTrack, model_stage, retrain_track

# intake and promotion read data and models (torch): imported inside the steps, so importing this module
# (the flows do) loads no torch.


class StepFailed(RuntimeError):
    """A retrain step could not be done; the message says why (params errors: one line per bad key)."""


def _setup(root: Path, track: str, params_file: Path | None) -> RetrainTrack:
    try:
        return retrain_track(load_params(params_file or root / "params.yaml"), track)
    except (ParamsError, RetrainSetupError) as err:
        raise StepFailed(str(err)) from err


def _shown(path: str, root: Path) -> str:
    """A path inside root as relative to it (as the params name it), anything else as it is."""
    try:
        return Path(path).relative_to(root).as_posix() if Path(path).is_absolute() else path
    except ValueError:
        return path


def intake(root: Path | str, track: str, journal: Path | str | None = None, params_file: Path | None = None) -> dict:
    """Validate every batch in the track's inbox and merge it into the pool or quarantine it (recording each
    merge in the retrain `journal` when given). Returns the pool, the model's name and champion, and each
    batch's fate."""
    from transferlab.system.errors import DataError
    from transferlab.ops.intake import process_inbox

    root = Path(root)
    setup = _setup(root, track, params_file)
    try:
        results = process_inbox(root / setup.inbox, root / setup.pool, setup.intake_kind(),
                                root / setup.test if setup.test else None, Path(journal) if journal else None)
    except DataError as err:
        raise StepFailed(f"intake: {err}") from err
    champion = registry.champion(root, setup.model_name)
    batches = [{**r.as_dict(), "moved_to": _shown(r.moved_to, root)} for r in results]
    return {"track": track, "pool": setup.pool.as_posix(), "model_name": setup.model_name,
            "champion_version": champion["version"] if champion else None, "batches": batches}


def promote(root: Path | str, track: str, params_file: Path | None = None, flow_run: dict | None = None) -> dict:
    """Register the best model of the track's last fine-tuning (where dvc.lock says its stage put the runs,
    models and test set); promote it if it beats the champion on the fixed test set by the track's margin;
    commit the registry. A model identical to a registered version is not registered again. `flow_run` (the
    Prefect flow run doing this) is recorded on the version."""
    from transferlab.ops.promotion import STREAM_FRR, champion_vs_challenger

    root = Path(root)
    setup = _setup(root, track, params_file)
    try:
        args = stage_arguments(root, model_stage(root, track))
        # A detector scored on continuous streams (its stage takes --streams) is promoted on FRR at the target
        # false-accept rate there; otherwise on the track's test-set metric.
        streams = Path(args["streams"]) if args.get("streams") else None
        metric = STREAM_FRR if setup.track == "audio" and streams else setup.metric
        decision = champion_vs_challenger(root, setup.model_name, Path(args["out"]), Path(args["models"]),
                                          Path(args["target"]), setup.margin, metric, flow_run, streams)
        if decision["registered"]:  # the index and the copy's .dvc file go into git with the version's tags
            decision["commit"] = commit_files(
                root, decision["files"], f"registry: {decision['name']} v{decision['challenger_version']} "
                + ("promoted to champion" if decision["promoted"] else "registered"))
    except (FileNotFoundError, ValueError, RuntimeError) as err:  # RetrainSetupError and ModelFileError among them
        raise StepFailed(f"promote: {err}") from err
    return decision
