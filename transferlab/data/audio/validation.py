"""Great Expectations suites for the prepared audio sets: format, level, labels, counts, voice leakage, pools."""
from __future__ import annotations

import pandas as pd

from transferlab.data.prepared import Prepared
from transferlab.data.validation import TableCheck
from transferlab.data.audio.clips import AUDIO_METADATA_COLUMNS
from transferlab.params import AudioPrepareParams, AudioValidateParams


def _clip_expectations(gxe, classes: list[str], splits: list[str], prep: AudioPrepareParams,
                       cfg: AudioValidateParams, speech_only: bool) -> list:
    clip_samples = int(round(prep.sample_rate * prep.clip_seconds))
    exps = [gxe.ExpectTableColumnsToMatchSet(column_set=AUDIO_METADATA_COLUMNS, exact_match=False),
            gxe.ExpectTableRowCountToBeBetween(min_value=1),
            gxe.ExpectColumnValuesToBeInSet(column="label", value_set=list(range(len(classes)))),
            gxe.ExpectColumnValuesToBeInSet(column="label_name", value_set=list(classes)),
            gxe.ExpectColumnValuesToBeInSet(column="split", value_set=splits),
            gxe.ExpectColumnValuesToBeInSet(column="sample_rate", value_set=[prep.sample_rate]),
            gxe.ExpectColumnValuesToBeInSet(column="samples", value_set=[clip_samples]),
            gxe.ExpectColumnValuesToBeBetween(column="duration_s", min_value=prep.clip_seconds - cfg.duration_tolerance,
                                              max_value=prep.clip_seconds + cfg.duration_tolerance),
            # No silent clip (a failed synthesis or an empty recording) and none clipped beyond the limit.
            gxe.ExpectColumnValuesToBeBetween(column="rms", min_value=cfg.min_rms, max_value=1.0),
            gxe.ExpectColumnValuesToBeBetween(column="peak", min_value=cfg.min_rms, max_value=1.0),
            gxe.ExpectColumnValuesToBeBetween(column="clipped_fraction", min_value=0,
                                              max_value=cfg.max_clipped_fraction),
            gxe.ExpectColumnValuesToBeBetween(column="nan_count", min_value=0, max_value=0),
            gxe.ExpectColumnValuesToBeUnique(column="content_hash", meta={"why": "no clip twice, in any split"})]
    if speech_only:
        exps.append(gxe.ExpectColumnValuesToNotBeInSet(column="word", value_set=["<noise>"]))
    exps += [gxe.ExpectColumnValuesToNotBeNull(column=c) for c in AUDIO_METADATA_COLUMNS]
    return exps


def speaker_roles_table(source: Prepared, target: Prepared) -> pd.DataFrame:
    """One row per speaker with the roles (A-train, A-val, B-train, B-test) it appears in: must be exactly one."""
    roles = pd.concat([source.metadata[["speaker"]].assign(role="A-" + source.metadata["split"]),
                       target.metadata[["speaker"]].assign(role="B-" + target.metadata["split"])])
    roles = roles[roles["speaker"] != "none"]  # noise-only clips have no speaker
    table = roles.groupby("speaker")["role"].agg(lambda r: ",".join(sorted(set(r)))).reset_index()
    table["roles"] = table["role"].str.count(",") + 1
    return table


def build_audio_checks(source: Prepared, target: Prepared, prep: AudioPrepareParams,
                       cfg: AudioValidateParams) -> list[TableCheck]:
    import great_expectations.expectations as gxe

    checks = [TableCheck("audio_source_metadata", source.metadata,
                         _clip_expectations(gxe, source.classes, ["train", "val"], prep, cfg, True), "id"),
              TableCheck("audio_target_metadata", target.metadata,
                         _clip_expectations(gxe, target.classes, ["train", "test"], prep, cfg, False), "id")]
    counts = source.metadata[source.metadata["split"] == "train"]["label"].value_counts()
    src_counts = pd.DataFrame({"class": source.classes, "count": [int(counts.get(i, 0)) for i in
                                                                 range(len(source.classes))]})
    checks.append(TableCheck("audio_source_class_counts", src_counts,
                             [gxe.ExpectColumnValuesToBeBetween(column="count", min_value=cfg.min_per_class_source)],
                             "class"))
    t = target.metadata
    positives = pd.DataFrame({"split": ["train", "test"],
                              "count": [int(((t["split"] == s) & (t["label"] == 1)).sum()) for s in ("train", "test")],
                              "minimum": [max(prep.target.pool_sizes), cfg.min_positives_test]})
    checks.append(TableCheck("audio_target_positives", positives,
                             [gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="count", column_B="minimum",
                                                                          or_equal=True)], "split"))
    checks.append(TableCheck("audio_speaker_leakage", speaker_roles_table(source, target),
                             [gxe.ExpectColumnValuesToBeBetween(column="roles", min_value=1, max_value=1,
                                                                meta={"why": "a voice in two roles leaks"})],
                             "speaker"))
    if target.pools is not None:
        pools = target.pools.copy()
        pools["row_split"] = t["split"].to_numpy()[pools["row"]]
        pools["id"] = t["id"].to_numpy()[pools["row"]]
        pools["positive"] = t["label"].to_numpy()[pools["row"]]
        sizes = pools.groupby(["draw", "per_class"])["positive"].sum().rename("positives").reset_index()
        sizes["key"] = "draw" + sizes["draw"].astype(str) + "/pos" + sizes["per_class"].astype(str)
        checks += [TableCheck("audio_target_pools", pools,
                              [gxe.ExpectColumnValuesToBeInSet(column="row_split", value_set=["train"]),
                               gxe.ExpectCompoundColumnsToBeUnique(column_list=["draw", "per_class", "row"])], "id"),
                   TableCheck("audio_target_pool_sizes", sizes,
                              [gxe.ExpectColumnPairValuesToBeEqual(column_A="positives", column_B="per_class")],
                              "key")]
    return checks
