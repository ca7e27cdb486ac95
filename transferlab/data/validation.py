"""Great Expectations gates for the prepared data sets: suites, results JSON and Data Docs."""
from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from transferlab.data.prepared import METADATA_COLUMNS, Prepared
from transferlab.params import PrepareParams, ValidateParams


@dataclass
class TableCheck:
    """One table to validate and the expectations it must meet."""

    name: str
    frame: pd.DataFrame
    expectations: list
    id_column: str


@dataclass
class Failure:
    table: str
    expectation: str
    column: str | None
    rows: list = field(default_factory=list)
    observed: object = None

    def describe(self) -> str:
        where = f" column {self.column!r}" if self.column else ""
        rows = f"; failing rows: {', '.join(map(str, self.rows))}" if self.rows else ""
        seen = f"; observed {self.observed}" if self.observed is not None and not self.rows else ""
        return f"[{self.table}] {self.expectation}{where}{rows}{seen}"


def _class_counts(meta: pd.DataFrame, classes: list[str], split: str) -> pd.DataFrame:
    counts = meta[meta["split"] == split]["label"].value_counts()
    return pd.DataFrame({"class": classes, "split": split,
                         "count": [int(counts.get(i, 0)) for i in range(len(classes))]})


def _metadata_expectations(gxe, classes: list[str], splits: list[str], image_size: int, channels: int) -> list:
    exps = [gxe.ExpectTableColumnsToMatchSet(column_set=METADATA_COLUMNS, exact_match=False),
            gxe.ExpectTableRowCountToBeBetween(min_value=1),
            gxe.ExpectColumnValuesToBeInSet(column="label", value_set=list(range(len(classes)))),
            gxe.ExpectColumnValuesToBeInSet(column="label_name", value_set=list(classes)),
            gxe.ExpectColumnValuesToBeInSet(column="split", value_set=splits),
            gxe.ExpectColumnValuesToBeBetween(column="pixel_min", min_value=0, max_value=255),
            gxe.ExpectColumnValuesToBeBetween(column="pixel_max", min_value=1, max_value=255),  # 1: no blank image
            gxe.ExpectColumnValuesToBeBetween(column="nan_count", min_value=0, max_value=0),
            gxe.ExpectColumnValuesToBeInSet(column="height", value_set=[image_size]),
            gxe.ExpectColumnValuesToBeInSet(column="width", value_set=[image_size]),
            gxe.ExpectColumnValuesToBeInSet(column="channels", value_set=[channels]),
            # Duplicates inside one split, then anywhere: the second alone failing means train/test leakage.
            gxe.ExpectCompoundColumnsToBeUnique(column_list=["split", "content_hash"]),
            gxe.ExpectColumnValuesToBeUnique(column="content_hash", meta={"why": "no image in two splits"})]
    exps += [gxe.ExpectColumnValuesToNotBeNull(column=c) for c in METADATA_COLUMNS]
    return exps


def build_checks(source: Prepared, target: Prepared, prep: PrepareParams, cfg: ValidateParams) -> list[TableCheck]:
    import great_expectations.expectations as gxe

    checks = [TableCheck("source_metadata", source.metadata,
                         _metadata_expectations(gxe, source.classes, ["train", "val"], prep.image_size, prep.channels),
                         "id"),
              TableCheck("target_metadata", target.metadata,
                         _metadata_expectations(gxe, target.classes, ["train", "test"], prep.image_size,
                                                prep.channels), "id"),
              TableCheck("source_class_counts", _class_counts(source.metadata, source.classes, "train"),
                         [gxe.ExpectColumnValuesToBeBetween(column="count", min_value=cfg.min_per_class_source)],
                         "class")]
    need = max(prep.target.pool_sizes)
    counts = pd.concat([_class_counts(target.metadata, target.classes, "test"),
                        _class_counts(target.metadata, target.classes, "train")], ignore_index=True)
    counts["minimum"] = counts["split"].map({"test": cfg.min_per_class_test, "train": need})
    counts["class"] = counts["class"] + "/" + counts["split"]
    checks.append(TableCheck("target_class_counts", counts,
                             [gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="count", column_B="minimum",
                                                                          or_equal=True)], "class"))
    if target.pools is not None:
        pools = target.pools.copy()
        pools["row_split"] = target.metadata["split"].to_numpy()[pools["row"]]
        pools["label"] = target.metadata["label"].to_numpy()[pools["row"]]
        pools["id"] = target.metadata["id"].to_numpy()[pools["row"]]
        sizes = pools.groupby(["draw", "per_class", "label"]).size().rename("count").reset_index()
        sizes["key"] = sizes.apply(lambda r: f"draw{r.draw}/n{r.per_class}/class{r.label}", axis=1)
        full = pd.MultiIndex.from_product([range(prep.target.pool_draws), prep.target.pool_sizes,
                                           range(len(target.classes))], names=["draw", "per_class", "label"])
        sizes = sizes.set_index(["draw", "per_class", "label"]).reindex(full).reset_index()
        sizes["count"] = sizes["count"].fillna(0).astype(int)
        sizes["key"] = sizes.apply(lambda r: f"draw{r.draw}/n{r.per_class}/class{r.label}", axis=1)
        checks += [TableCheck("target_pools", pools,
                              [gxe.ExpectColumnValuesToBeInSet(column="row_split", value_set=["train"]),
                               gxe.ExpectColumnValuesToBeInSet(column="per_class",
                                                               value_set=list(prep.target.pool_sizes)),
                               gxe.ExpectCompoundColumnsToBeUnique(column_list=["draw", "per_class", "row"])], "id"),
                   TableCheck("target_pool_sizes", sizes,
                              [gxe.ExpectColumnPairValuesToBeEqual(column_A="count", column_B="per_class")], "key")]
    return checks


def _failures(table: str, result, id_column: str, max_rows: int) -> list[Failure]:
    out = []
    for r in result.results:
        if r.success:
            continue
        cfg = r.expectation_config
        res = r.result or {}
        rows = [i.get(id_column, i) if isinstance(i, dict) else i
                for i in (res.get("unexpected_index_list") or [])][:max_rows]
        out.append(Failure(table, cfg.type, cfg.kwargs.get("column") or cfg.kwargs.get("column_list"),
                           rows, res.get("observed_value")))
    return out


def run_checks(checks: list[TableCheck], docs_dir: Path, max_rows: int = 20) -> tuple[dict, list[Failure]]:
    """Validate every table with GX, build Data Docs into docs_dir, return (summary, failures)."""
    import great_expectations as gx

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    docs_dir.mkdir(parents=True, exist_ok=True)
    context.add_data_docs_site(site_name="transferlab", site_config={
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir.resolve())},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    })
    asset = context.data_sources.add_pandas("prepared")
    summary: dict = {"success": True, "tables": {}}
    failures: list[Failure] = []
    for check in checks:
        batch = asset.add_dataframe_asset(check.name).add_batch_definition_whole_dataframe(check.name)
        suite = context.suites.add(gx.ExpectationSuite(name=check.name))
        for exp in check.expectations:
            suite.add_expectation(exp)
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=check.name, data=batch, suite=suite))
        checkpoint = context.checkpoints.add(gx.Checkpoint(
            name=check.name, validation_definitions=[definition],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="docs", site_names=["transferlab"])],
            result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [check.id_column]}))
        run = checkpoint.run(batch_parameters={"dataframe": check.frame})
        result = next(iter(run.run_results.values()))
        stats = result.statistics
        table_failures = _failures(check.name, result, check.id_column, max_rows)
        failures += table_failures
        summary["tables"][check.name] = {
            "success": bool(result.success), "rows": int(len(check.frame)),
            "evaluated": int(stats["evaluated_expectations"]), "passed": int(stats["successful_expectations"]),
            "failed": [f.describe() for f in table_failures]}
        summary["success"] &= bool(result.success)
    # Data Docs also writes a static asset folder per build; keep only what the site needs.
    shutil.rmtree(docs_dir / "expectations" / ".ge_store_backend_id", ignore_errors=True)
    return summary, failures


def build_derived_checks(name: str, metadata: pd.DataFrame, classes: list[str], image_size: int,
                         task_columns: list[str] = (), min_positive_rate: float = 0.05) -> list[TableCheck]:
    """Suites for image sets built from validated digits (canvases, multi-task scenes): format, labels,
    no duplicate, and for multi-label scenes each task label binary and neither (almost) always nor never on."""
    import great_expectations.expectations as gxe

    checks = [TableCheck(f"{name}_metadata", metadata,
                         _metadata_expectations(gxe, classes, ["train", "test"], image_size, 1), "id")]
    def label_expectations() -> list:  # one list per suite: GX ties an expectation to one suite
        return ([gxe.ExpectColumnValuesToBeInSet(column=c, value_set=[0, 1]) for c in task_columns]
                + [gxe.ExpectColumnMeanToBeBetween(column=c, min_value=min_positive_rate,
                                                   max_value=1 - min_positive_rate) for c in task_columns])
    if task_columns:
        checks += [TableCheck(f"{name}_{split}_labels", metadata[metadata["split"] == split], label_expectations(),
                              "id") for split in ("train", "test")]
    return checks


def source_only(summary: dict) -> dict:
    """The source tables of a validation summary, as their own result: what pre-training depends on. A change to
    the target data re-runs validation but writes this file unchanged, so DVC re-runs no pre-training for it."""
    tables = {k: v for k, v in summary["tables"].items() if "source" in k and "target" not in k}
    return {"success": all(t["success"] for t in tables.values()), "tables": tables}


def gate(checks: list[TableCheck], result_path: Path | str, docs_dir: Path | str, max_rows: int = 20) -> list[Failure]:
    """Validate, write the result JSON and Data Docs (atomically), and return the failures; the caller
    decides to stop. Printed for the user: what failed, in which table, on which rows."""
    import sys

    from transferlab.system.io import atomic_dir, write_json

    with atomic_dir(docs_dir) as docs:
        summary, failures = run_checks(checks, docs, max_rows)
    write_json(result_path, summary)
    if failures:
        print(f"validation FAILED: {len(failures)} expectation(s) not met:", file=sys.stderr)
        for failure in failures:
            print(f"  - {failure.describe()}", file=sys.stderr)
        print(f"details: {result_path}; Data Docs: {docs_dir}/index.html", file=sys.stderr)
    else:
        print(f"validation passed: {sum(t['evaluated'] for t in summary['tables'].values())} expectations "
              f"on {len(summary['tables'])} tables")
    return failures
