"""New labelled target data arrives in an inbox: each sub-folder is one batch in ImageFolder layout.
A batch is validated with Great Expectations against the pool it would join; a good batch is merged into
the pool (and moved to inbox/merged), a bad one is moved to inbox/quarantine with its validation report.
Nothing is ever deleted."""
from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path

from .data.prepared import metadata_table
from .data.sources import DataError, load_image_folder
from .io import write_json
from .validation import TableCheck, run_checks

RESERVED = {"merged", "quarantine"}


@dataclass
class BatchResult:
    batch: str
    status: str  # merged | quarantined
    images: int
    moved_to: str
    problems: list[str]

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def batch_checks(table, pool_classes: list[str], pool_hashes: set[str], size: int, channels: int) -> list[TableCheck]:
    import great_expectations.expectations as gxe

    return [TableCheck("inbox_batch", table, [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnValuesToBeInSet(column="label_name", value_set=list(pool_classes),
                                        meta={"why": "a batch may only add images of the pool's classes"}),
        gxe.ExpectColumnValuesToBeInSet(column="height", value_set=[size]),
        gxe.ExpectColumnValuesToBeInSet(column="channels", value_set=[channels]),
        gxe.ExpectColumnValuesToBeBetween(column="pixel_max", min_value=1, max_value=255),  # no blank image
        gxe.ExpectColumnValuesToBeBetween(column="nan_count", min_value=0, max_value=0),
        gxe.ExpectColumnValuesToBeUnique(column="content_hash", meta={"why": "no image twice in a batch"}),
        gxe.ExpectColumnValuesToNotBeInSet(column="content_hash", value_set=sorted(pool_hashes),
                                           meta={"why": "no image the pool already has (or the test set)"}),
    ], "id")]


def _stamp() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")


def process_batch(batch: Path, pool: Path, size: int, channels: int, protected: list[Path] = ()) -> BatchResult:
    """Validate one batch against `pool` (and the `protected` folders, e.g. the fixed test set); merge or
    quarantine it."""
    inbox = batch.parent
    known = [load_image_folder(p, size, channels) for p in [pool, *protected] if p.is_dir()]
    classes = known[0].classes if known else []
    hashes = {h for k in known for h in metadata_table(k, ["train"] * len(k.labels))["content_hash"]}
    report_dir = inbox / "quarantine" / f"{batch.name}-{_stamp()}"
    try:
        data = load_image_folder(batch, size, channels)
        table = metadata_table(data, ["train"] * len(data.labels))
        summary, failures = run_checks(batch_checks(table, classes, hashes, size, channels), report_dir / "datadocs")
        problems = [f.describe() for f in failures]
    except DataError as err:
        summary, problems, data = {"success": False}, [str(err)], None
    if problems:
        report_dir.mkdir(parents=True, exist_ok=True)
        shutil.move(str(batch), str(report_dir / "batch"))
        write_json(report_dir / "validation.json", {**summary, "batch": batch.name, "problems": problems})
        return BatchResult(batch.name, "quarantined", 0 if data is None else len(data.labels), str(report_dir), problems)
    shutil.rmtree(report_dir, ignore_errors=True)  # the Data Docs of a good batch are not kept
    for path in sorted(p for p in batch.rglob("*") if p.is_file()):
        rel = path.relative_to(batch)
        dest = pool / rel.parts[0] / f"{batch.name}__{'__'.join(rel.parts[1:])}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)
    merged = inbox / "merged" / f"{batch.name}-{_stamp()}"
    merged.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(batch), str(merged))
    return BatchResult(batch.name, "merged", len(data.labels), str(merged), [])


def process_inbox(inbox: Path, pool: Path, size: int, channels: int, protected: list[Path] = ()) -> list[BatchResult]:
    if not inbox.is_dir():
        raise DataError(f"inbox {inbox} does not exist")
    batches = sorted(p for p in inbox.iterdir() if p.is_dir() and p.name not in RESERVED)
    return [process_batch(b, pool, size, channels, protected) for b in batches]
