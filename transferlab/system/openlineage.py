"""OpenLineage START / COMPLETE / FAIL events for every stage run, with the data it read and wrote as
datasets and their md5 as the version facet. File transport by default (one JSON event per line in
.transferlab/openlineage.jsonl); with OPENLINEAGE_URL or OPENLINEAGE_CONFIG set, the client's own
configuration (e.g. HTTP to Marquez). TRANSFERLAB_OPENLINEAGE=off turns it off."""
from __future__ import annotations

import datetime as dt
import os
import uuid
from pathlib import Path

from transferlab.system.io import dir_md5, file_md5

NAMESPACE = "transferlab"
EVENTS_FILE = Path(".transferlab") / "openlineage.jsonl"


def _client():
    from openlineage.client import OpenLineageClient
    from openlineage.client.transport.file import FileConfig, FileTransport

    if os.environ.get("OPENLINEAGE_URL") or os.environ.get("OPENLINEAGE_CONFIG"):
        return OpenLineageClient()
    EVENTS_FILE.parent.mkdir(exist_ok=True)
    return OpenLineageClient(transport=FileTransport(FileConfig(log_file_path=str(EVENTS_FILE), append=True)))


def _dataset(cls, path: Path, versioned: bool = True):
    from openlineage.client.generated.dataset_version_dataset import DatasetVersionDatasetFacet

    facets = {"version": DatasetVersionDatasetFacet(_md5(path))} if versioned and path.exists() else {}
    return cls(namespace="file", name=str(path.resolve()), facets=facets)


def _md5(path: Path) -> str:
    return dir_md5(path) if path.is_dir() else file_md5(path)


def _signature(path: Path) -> tuple:
    """Cheap change detection (sizes and mtimes), so only what a stage wrote is hashed after it."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)


class StageRunEvents:
    """Emit the events of one stage run; inputs are the paths that existed before it ran, outputs the
    paths it wrote (new or changed). A broken lineage backend never fails the stage itself."""

    def __init__(self, job: str, paths: list[Path]):
        self.enabled = os.environ.get("TRANSFERLAB_OPENLINEAGE", "on").lower() not in ("off", "0", "false")
        self.job, self.paths, self.run_id = job, paths, str(uuid.uuid4())
        self.before = {p: _signature(p) for p in paths if p.exists()} if self.enabled else {}

    def _emit(self, state: str, outputs: list[Path], error: str | None = None) -> None:
        if not self.enabled:
            return
        try:
            from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
            from openlineage.client.generated.error_message_run import ErrorMessageRunFacet

            facets = {"errorMessage": ErrorMessageRunFacet(message=error, programmingLanguage="python")} if error else {}
            event = RunEvent(eventType=getattr(RunState, state),
                             eventTime=dt.datetime.now(dt.timezone.utc).isoformat(),
                             run=Run(runId=self.run_id, facets=facets), job=Job(namespace=NAMESPACE, name=self.job),
                             producer="https://github.com/transferlab/transferlab",
                             # md5 versions on COMPLETE only: one pass over each path per run
                             inputs=[_dataset(InputDataset, p, state == "COMPLETE") for p in self.before
                                     if p not in outputs],
                             outputs=[_dataset(OutputDataset, p) for p in outputs])
            _client().emit(event)
        except Exception as err:  # noqa: BLE001 - lineage is an observer, never the reason a stage fails
            print(f"warning: OpenLineage {state} event not emitted: {err}")

    def start(self) -> None:
        self._emit("START", [])

    def complete(self) -> None:
        if not self.enabled:
            return
        written = [p for p in self.paths if p.exists() and self.before.get(p) != _signature(p)]
        self._emit("COMPLETE", written)

    def fail(self, error: str) -> None:
        self._emit("FAIL", [], error)
