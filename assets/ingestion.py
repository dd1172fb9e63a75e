"""Raw tables: one daily-partitioned asset per landing dataset, with its data contract."""


import dagster as dg

from assets import OWNERS
from offline_rl.data.schemas import SOURCES, SourceSchema
from offline_rl.data.warehouse import Warehouse
from offline_rl.pipeline import ingest_partition
from offline_rl.report import markdown_table
from orchestration.partitions import daily, partition_day
from orchestration.resources import TRANSIENT_RETRY, DataHome


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
                          description="No landing file of the partition was quarantined whole."),
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
        checks = [
            dg.AssetCheckResult(check_name="keys_not_null", passed=(
                n := _count(wh, "checks/count_null_key", schema, day, key=schema.key)) == 0,
                metadata={"null_keys": n}),
            dg.AssetCheckResult(check_name="event_ids_unique", passed=(
                d := _count(wh, "checks/count_duplicate_keys", schema, day, key=schema.key)) == 0,
                metadata={"duplicates": d}),
            dg.AssetCheckResult(check_name="no_rejected_files", passed=rejected == 0,
                                severity=dg.AssetCheckSeverity.WARN,
                                metadata={"rejected_files": rejected}),
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
                "rows_quarantined": quarantined_rows,
                "files_rejected": rejected,
                "duplicates_dropped": load.duplicates,
                "summary": load.describe(),
                "files_skipped": dg.MetadataValue.md(
                    "\n".join(f"- `{n}`" for n in load.skipped) or "_(none)_"),
                "preview": dg.MetadataValue.md(markdown_table(preview)),
            },
            check_results=checks,
        )

    return _raw


raw_assets = [raw_asset(schema) for schema in SOURCES.values()]
