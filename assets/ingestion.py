"""Raw tables: one daily-partitioned asset per landing dataset, with its data contract."""


import dagster as dg
import polars as pl

from assets import OWNERS
from offline_rl.data.ingest import PartitionLoad
from offline_rl.data.schemas import SourceSchema
from offline_rl.data.warehouse import Warehouse
from offline_rl.domains import landing_schemas
from offline_rl.pipeline import ingest_partition
from offline_rl.report import markdown_table
from orchestration.partitions import daily, partition_day
from orchestration.resources import TRANSIENT_RETRY, DataHome

LISTED = 20
"""Quarantine entries listed in the asset's metadata (the rest are counted)."""


def _cut(text: str | None, limit: int) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _listing_hint(schema: SourceSchema, day) -> str:
    return f"`offline-rl quarantine --dataset {schema.name} --day {day:%Y-%m-%d}`"


def quarantine_markdown(load: PartitionLoad, schema: SourceSchema, day) -> str:
    """The partition's rejected files (first) and quarantined rows with their reasons, at most
    ``LISTED`` of them, and a line counting the rest and naming the command that lists all."""
    q = load.quarantine
    if q.is_empty():
        return "_(nothing quarantined)_"
    ordered = q.sort(pl.col("row_number").is_not_null(), "file", "row_number")
    shown = ordered.head(LISTED).select(
        "file",
        row=pl.col("row_number").cast(pl.String).fill_null("whole file"),
        reason=pl.col("reason").map_elements(lambda r: _cut(r, 300), return_dtype=pl.String),
        record=pl.col("record").map_elements(lambda r: _cut(r, 80), return_dtype=pl.String),
    )
    text = markdown_table(shown)
    rest = q.height - shown.height
    if rest:
        text += f"\n\n... and {rest} more; {_listing_hint(schema, day)} lists them all."
    return text


def _rejections(load: PartitionLoad) -> pl.DataFrame:
    """(file, reason) of the files quarantined whole, the ``file rejected:`` prefix dropped."""
    return load.quarantine.filter(pl.col("row_number").is_null()).select(
        "file", reason=pl.col("reason").str.strip_prefix("file rejected: "))


def _count(wh: Warehouse, sql: str, schema: SourceSchema, day, **identifiers: str) -> int:
    return int(wh.query(sql, table=schema.table, identifiers=identifiers, day=day)["n"][0])


def _checks(schema: SourceSchema) -> list[dg.AssetCheckSpec]:
    key = dg.AssetKey(schema.table)
    specs = [
        dg.AssetCheckSpec("keys_not_null", asset=key, blocking=True,
                          description=f"No null {schema.key} in the loaded partition."),
        dg.AssetCheckSpec("event_ids_unique", asset=key, blocking=True,
                          description=f"Each {schema.key} appears once in the partition."),
        dg.AssetCheckSpec("no_rejected_files", asset=key,
                          description="No landing file of the partition was quarantined whole. "
                                      "A rejected file fails this check as a WARN (the rest "
                                      "of the day still loads) naming each file and the "
                                      "reason."),
        dg.AssetCheckSpec("reconciled", asset=key, blocking=True,
                          description="Rows read = loaded + quarantined + duplicates dropped."),
    ]
    if schema.probability_column:
        specs.append(dg.AssetCheckSpec(
            "probabilities_valid", asset=key, blocking=True,
            description=f"{schema.probability_column} lies in (0, 1] where present."))
    return specs


def raw_asset(schema: SourceSchema) -> dg.AssetsDefinition:
    """The ``raw_<dataset>`` asset of one landing dataset."""

    @dg.asset(
        name=schema.table,
        partitions_def=daily,
        retry_policy=TRANSIENT_RETRY,
        group_name="ingestion",
        kinds={"duckdb", "parquet"},
        owners=OWNERS,
        tags={"source": schema.source},
        description=f"{schema.doc} Loaded from landing/{schema.name}/date=YYYY-MM-DD.",
        check_specs=_checks(schema),
    )
    def _raw(context: dg.AssetExecutionContext, data_home: DataHome) -> dg.MaterializeResult:
        paths = data_home.paths()
        day = partition_day(context)
        load = ingest_partition(paths, schema, day)
        wh = Warehouse(paths.warehouse)
        rejected, quarantined_rows = load.rejected_files, load.quarantined_rows
        rejections = _rejections(load)
        if rejected or quarantined_rows:  # a line a person running the job sees, not DEBUG
            context.log.warning(
                f"{schema.table} {day}: {rejected} file(s) rejected"
                + (": " if rejected else "")
                + ", ".join(f"{f} ({_cut(r, 120)})" for f, r in rejections.head(5).iter_rows())
                + (", ..." if rejected > 5 else "")
                + f"; {quarantined_rows} row(s) quarantined; "
                + _listing_hint(schema, day).strip("`") + " lists them")
        checks = [
            dg.AssetCheckResult(check_name="keys_not_null", passed=(
                n := _count(wh, "checks/count_null_key", schema, day, key=schema.key)) == 0,
                metadata={"null_keys": n}),
            dg.AssetCheckResult(check_name="event_ids_unique", passed=(
                d := _count(wh, "checks/count_duplicate_keys", schema, day, key=schema.key)) == 0,
                metadata={"duplicates": d}),
            dg.AssetCheckResult(
                check_name="no_rejected_files", passed=rejected == 0,
                severity=dg.AssetCheckSeverity.WARN,
                description=(f"{rejected} landing file(s) rejected whole: " + "; ".join(
                    f"{f} ({_cut(r, 200)})" for f, r in rejections.head(LISTED).iter_rows())
                    + (f"; and {rejected - LISTED} more" if rejected > LISTED else "")
                ) if rejected else "No landing file was rejected.",
                metadata={"rejected_files": dg.MetadataValue.int(rejected),
                          "rejected": dg.MetadataValue.md(markdown_table(rejections.head(
                              LISTED)) if rejected else "_(none)_")}),
            dg.AssetCheckResult(check_name="reconciled", passed=load.reconciled, metadata={
                "read": load.rows_read, "loaded": load.rows.height,
                "quarantined": quarantined_rows, "duplicates": load.duplicates}),
        ]
        if schema.probability_column:
            bad = _count(wh, "checks/count_bad_probabilities", schema, day,
                         prob=schema.probability_column)
            checks.append(dg.AssetCheckResult(check_name="probabilities_valid", passed=bad == 0,
                                              metadata={"bad_probabilities": bad}))
        preview = load.rows.drop("_source_file", "_source_row").head(5)
        return dg.MaterializeResult(
            metadata={
                "partition": day.isoformat(),
                "files": len(load.files),
                "rows_read": load.rows_read,
                "rows_loaded": dg.MetadataValue.int(load.rows.height),
                "rows_quarantined": dg.MetadataValue.int(quarantined_rows),
                "files_rejected": dg.MetadataValue.int(rejected),
                "quarantine": dg.MetadataValue.md(quarantine_markdown(load, schema, day)),
                "duplicates_dropped": load.duplicates,
                "summary": load.describe(),
                "files_skipped": dg.MetadataValue.md(
                    "\n".join(f"- `{n}`" for n in load.skipped) or "_(none)_"),
                "preview": dg.MetadataValue.md(markdown_table(preview)),
            },
            check_results=checks,
        )

    return _raw


raw_assets = [raw_asset(schema) for schema in landing_schemas().values()]
