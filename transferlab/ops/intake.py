"""New labelled target data arrives in an inbox: each sub-folder is one batch, a folder per class (images in
ImageFolder layout, or WAV/FLAC clips). A batch is validated with Great Expectations against the pool it
would join and the fixed test set; a good batch is merged into the pool (and moved to inbox/merged), a bad
one is moved to inbox/quarantine with its validation report. Nothing is ever deleted."""
from __future__ import annotations

import datetime as dt
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from transferlab.data.drift import sample_statistics
from transferlab.system.io import write_json

if TYPE_CHECKING:
    from transferlab.data.validation import Failure, TableCheck

# The data readers and the validation (and DataError with them) load torch: they are imported inside the
# functions that read a batch, so the retrain flow imports ops without loading torch.

RESERVED = {"merged", "quarantine"}
DRIFT_MIN_POOL = 20  # fewer pool items say too little about the pool's spread to call a batch drifted


@dataclass
class BatchResult:
    batch: str
    status: str  # merged | quarantined
    items: int
    moved_to: str
    problems: list[str]

    def as_dict(self) -> dict:
        return self.__dict__.copy()


@dataclass(frozen=True)
class ImageIntake:
    """Images: the pool's classes, the training size and channels, no blank image, nothing seen before, and
    no drift in pixel mean or stroke coverage from the pool."""

    size: int
    channels: int
    drift_columns = ("pixel_mean", "coverage")

    def table(self, folder: Path) -> tuple[pd.DataFrame, list[str]]:
        from transferlab.data.prepared import metadata_table
        from transferlab.data.sources import load_image_folder

        data = load_image_folder(folder, self.size, self.channels)
        table = metadata_table(data, ["train"] * len(data.labels))
        table["coverage"] = sample_statistics(data.images, "image")["coverage"].round(4)
        return table, data.classes

    def expectations(self, gxe, test: pd.DataFrame) -> list:
        return [gxe.ExpectColumnValuesToBeInSet(column="height", value_set=[self.size]),
                gxe.ExpectColumnValuesToBeInSet(column="channels", value_set=[self.channels]),
                gxe.ExpectColumnValuesToBeBetween(column="pixel_max", min_value=1, max_value=255)]  # no blank


@dataclass(frozen=True)
class AudioIntake:
    """Clips: the pool's classes, not silent or clipped, nothing heard before, no voice of the fixed test
    set (test voices must stay unseen in training), and no drift in level from the pool."""

    sample_rate: int
    clip_seconds: float
    min_rms: float
    max_clipped_fraction: float
    drift_columns = ("rms",)

    def table(self, folder: Path) -> tuple[pd.DataFrame, list[str]]:
        from transferlab.data.audio.clips import audio_metadata_table, load_audio_folder

        data = load_audio_folder(folder, self.sample_rate, self.clip_seconds)
        return audio_metadata_table(data, ["train"] * len(data.labels)), data.classes

    def expectations(self, gxe, test: pd.DataFrame) -> list:
        return [gxe.ExpectColumnValuesToBeBetween(column="rms", min_value=self.min_rms, max_value=1.0),
                gxe.ExpectColumnValuesToBeBetween(column="clipped_fraction", min_value=0,
                                                  max_value=self.max_clipped_fraction),
                gxe.ExpectColumnValuesToNotBeInSet(column="speaker", value_set=sorted(set(test.get("speaker", []))),
                                                   meta={"why": "a voice of the fixed test set would leak"})]


def drift_expectations(gxe, pool: pd.DataFrame, columns: tuple[str, ...]) -> list:
    """The batch's mean of each per-item statistic must lie where 99 % of the pool's items lie (the pool's 0.5
    and 99.5 percentiles). Not the pool mean +- k std/sqrt(batch size): that tests whether the batch is a random
    draw of the pool, which a batch from another writer or microphone never quite is. This asks whether the
    batch's average item would be an outlier in the pool: with no drift, false alarms are about 1 % for a batch
    of one and vanish for larger ones; a batch drawn with another pen or scanner (scikit-learn's digits scaled up:
    mean coverage 0.56 against MNIST's 99.5th percentile 0.31) is caught. No check for a pool of fewer than
    DRIFT_MIN_POOL items."""
    out = []
    for column in columns:
        values = pool[column].dropna().to_numpy(float) if column in pool else np.zeros(0)
        if len(values) < DRIFT_MIN_POOL:
            continue
        lo, hi = (float(v) for v in np.percentile(values, [0.5, 99.5]))
        out.append(gxe.ExpectColumnMeanToBeBetween(
            column=column, min_value=round(lo, 5), max_value=round(hi, 5),
            meta={"why": f"drift: the batch's mean {column} must lie in [{lo:.4g}, {hi:.4g}], where 99% of the "
                         f"pool's {len(values)} items lie; outside, the batch comes from another distribution "
                         "than the pool (pen, scanner, microphone, level)"}))
    return out


def batch_checks(table: pd.DataFrame, kind: ImageIntake | AudioIntake, pool_classes: list[str],
                 known: pd.DataFrame, test: pd.DataFrame) -> list[TableCheck]:
    import great_expectations.expectations as gxe

    from transferlab.data.validation import TableCheck

    hashes = sorted(set(known["content_hash"]) | set(test["content_hash"]))
    return [TableCheck("inbox_batch", table, [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnValuesToBeInSet(column="label_name", value_set=list(pool_classes),
                                        meta={"why": "a batch may only add examples of the pool's classes"}),
        *kind.expectations(gxe, test),
        gxe.ExpectColumnValuesToBeBetween(column="nan_count", min_value=0, max_value=0),
        gxe.ExpectColumnValuesToBeUnique(column="content_hash", meta={"why": "nothing twice in a batch"}),
        gxe.ExpectColumnValuesToNotBeInSet(column="content_hash", value_set=hashes,
                                           meta={"why": "nothing the pool (or the test set) already has"}),
        *drift_expectations(gxe, known, kind.drift_columns),
    ], "id")]


def _explain(failure: Failure, checks: list[TableCheck]) -> str:
    """A failure's description, with the expectation's own reason when it gives one (a drift names its range)."""
    text = failure.describe()
    for check in checks:
        for exp in check.expectations:
            if (exp.expectation_type == failure.expectation and getattr(exp, "column", None) == failure.column
                    and (exp.meta or {}).get("why")):
                return f"{text} — {exp.meta['why']}"
    return text


def _stamp() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")


def _known(kind: ImageIntake | AudioIntake, folder: Path | None) -> tuple[pd.DataFrame, list[str]]:
    if folder is None or not folder.is_dir():
        return pd.DataFrame({"content_hash": [], "speaker": []}), []
    return kind.table(folder)


@dataclass
class Known:
    """What a batch is checked against: the pool (grown by each merged batch) and the fixed test set."""

    pool: pd.DataFrame
    test: pd.DataFrame
    classes: list[str]

    @classmethod
    def load(cls, kind: ImageIntake | AudioIntake, pool: Path, test: Path | None) -> Known:
        pool_table, classes = _known(kind, pool)
        test_table, test_classes = _known(kind, test)
        return cls(pool_table, test_table, classes or test_classes)


def outside_entries(batch: Path) -> list[str]:
    """Symbolic links, followed nowhere: the batch folder itself as a link brings in a folder from elsewhere; a
    link inside it either points outside the batch or repeats the batch's own files (a class folder linked to a
    sibling: the same images under two labels). Each is a problem naming the entry and where it points."""
    from transferlab.data.sources import display_name

    if batch.is_symlink():
        return [f"{display_name(batch)}: the batch is a symbolic link (to {display_name(os.readlink(batch))}); a batch "
                "must be a folder in the inbox, so nothing is read or merged through it"]
    problems, root = [], batch.resolve()
    for folder, dirs, files in os.walk(batch, followlinks=False):
        for name in sorted(dirs + files):
            entry = Path(folder) / name
            if not entry.is_symlink():
                continue
            target = entry.resolve()
            where = ("another part of this batch: its files would be read twice, under two names"
                     if target == root or root in target.parents else "outside the batch")
            problems.append(f"{display_name(entry)}: a symbolic link to {display_name(os.readlink(entry))}, "
                            f"{where}; a batch may only hold its own files, so nothing is read through it")
    return problems


def process_batch(batch: Path, pool: Path, kind: ImageIntake | AudioIntake, known: Known,
                  journal: Path | None = None) -> BatchResult:
    """Validate one batch against the pool and the fixed test set; merge it (and add it to `known`, so a later
    batch cannot repeat it) or quarantine it. With a retrain journal, the merge is recorded before any file is
    copied, so a failed retrain can take it back."""
    from transferlab.data.sources import DataError, display_name
    from transferlab.data.validation import run_checks

    inbox = batch.parent
    stamp = _stamp()
    report_dir = inbox / "quarantine" / f"{batch.name}-{stamp}"
    table, summary, problems = None, {"success": False}, outside_entries(batch)
    try:
        if not problems:  # nothing is read through a link: a batch is only what lies in its folder
            table, _ = kind.table(batch)
            checks = batch_checks(table, kind, known.classes, known.pool, known.test)
            summary, failures = run_checks(checks, report_dir / "datadocs")
            problems = [_explain(f, checks) for f in failures]
    except DataError as err:
        problems = [str(err)]
    except Exception as err:  # noqa: BLE001 - one unreadable batch must never block the inbox behind it
        problems = [f"{display_name(batch)}: could not be read ({type(err).__name__}: {' '.join(str(err).split())})"]
    if problems:
        report_dir.mkdir(parents=True, exist_ok=True)
        kept = report_dir / "batch"
        shutil.move(str(batch), str(kept))
        # The report names each file where it now lies, not where it was before the move.
        problems = [p.replace(str(batch.resolve()), str(kept)).replace(str(batch), str(kept)) for p in problems]
        write_json(report_dir / "validation.json", {**summary, "batch": batch.name, "problems": problems})
        return BatchResult(batch.name, "quarantined", 0 if table is None else len(table), str(report_dir), problems)
    shutil.rmtree(report_dir, ignore_errors=True)  # the Data Docs of a good batch are not kept
    # Each batch lands in its own sub-folder of the class folder: file names (and the speakers that audio
    # file names carry) are kept, and a later batch can never overwrite an earlier file.
    files = sorted(p for p in batch.rglob("*") if p.is_file() and len(p.relative_to(batch).parts) > 1)
    merged = inbox / "merged" / f"{batch.name}-{stamp}"
    if journal is not None:
        from transferlab.ops.retrain_journal import record_batch

        record_batch(journal, batch, merged, sorted({pool / f.relative_to(batch).parts[0] / f"{batch.name}-{stamp}"
                                                     for f in files}))
    for path in files:
        rel = path.relative_to(batch)  # a stray file outside the class folders stays in the kept batch
        dest = pool / rel.parts[0] / f"{batch.name}-{stamp}" / Path(*rel.parts[1:])
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)
    merged.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(batch), str(merged))
    known.pool = pd.concat([known.pool, table], ignore_index=True)
    return BatchResult(batch.name, "merged", len(table), str(merged), [])


def process_inbox(inbox: Path, pool: Path, kind: ImageIntake | AudioIntake, test: Path | None = None,
                  journal: Path | None = None) -> list[BatchResult]:
    """Every batch in the inbox, oldest name first; the pool and test set are read once."""
    from transferlab.system.errors import DataError

    if not inbox.is_dir():
        raise DataError(f"inbox {inbox} does not exist")
    batches = sorted(p for p in inbox.iterdir() if p.is_dir() and p.name not in RESERVED)
    known = Known.load(kind, pool, test) if batches else None
    return [process_batch(b, pool, kind, known, journal) for b in batches]
