"""The backup files of the backed-up tables (both LangChain tables), materialized together from one snapshot."""

from collections.abc import Iterator
from typing import TypedDict

import dagster as dg

from pgvector_pipeline.assets.inventory import BACKUP_GROUP, inventory_refreshed
from pgvector_pipeline.assets.metadata import Metadata, collections_metadata, encryption_metadata, set_file_metadata
from pgvector_pipeline.contract import BACKFILL_TAG, OTHER_TABLES_ASSET, partition_key, result_tags
from pgvector_pipeline.errors import InvalidParams
from pgvector_pipeline.failures import failures_reported
from pgvector_pipeline.operations.backup import BackupChoices, BackupResult, Log, TableBackup
from pgvector_pipeline.operations.set_checks import (
    DEFAULT_ROWS_DROP,
    EMBEDDINGS_CHECK,
    FILES_CHECK,
    ROWS_CHECK,
    ROWS_DROP_ENV,
    SetCheck,
    check_written_set,
)
from pgvector_pipeline.partitions import backup_partitions, backup_set_of
from pgvector_pipeline.resources import BackupStoreResource, PgVectorResource
from pgvector_pipeline.run_config import request_config
from pgvector_pipeline.run_requests import BackupRequest
from pgvector_pipeline.store.backup_set_info import BackupSetInfo
from pgvector_pipeline.store.interface import BackupStore
from pgvector_pipeline.store.layout import check_stamped_now, manifest_name
from pgvector_pipeline.tables import DEFAULT_TABLES

# One asset per LangChain table, named after it, and one for the other tables a run names: the set's tables come
# from one snapshot, so they materialize together (each only when the set holds its tables).
ASSET_BY_TABLE = {name: dg.AssetKey(f"{name}_backup") for name in DEFAULT_TABLES.names}
OTHER_TABLES = dg.AssetKey(OTHER_TABLES_ASSET)
BACKUP_ASSET_KEYS = [*ASSET_BY_TABLE.values(), OTHER_TABLES]


def asset_of(table: str) -> dg.AssetKey:
    """The backup asset a table's file belongs to: LangChain's tables one each, every other table together."""
    return ASSET_BY_TABLE.get(table, OTHER_TABLES)


# The checks every backup run makes of the set it wrote, on each backup asset it materialized (pgvector_pipeline.operations.set_checks).
SET_CHECKS = {
    FILES_CHECK: "Every file of the set matches its manifest: sizes and sha256, as stored and decompressed.",
    EMBEDDINGS_CHECK: (
        "Every vector of the set loads as pgvector reads it (finite, in its type's range, of its column's dimension) "
        "and has the dimension of its collection's others."
    ),
    ROWS_CHECK: f"No table lost more than ${ROWS_DROP_ENV} (default {DEFAULT_ROWS_DROP:.0%}) of its rows since the "
    f"location's previous complete set (a warning).",
}
# Lost connections and server restarts are retried (exponential back-off, see failures.py); nothing else.
CONNECTION_RETRIES = 3


class BackupConfig(request_config(BackupRequest, leave_out=("task_id",))):  # type: ignore[misc]  # BackupRequest's
    """Run config of vector_store_backup (vector_backup_job): a backup's config without its task id (the set is the
    run's partition)."""


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            asset,
            description=f"The file of {table}: its CSV with a header, or PostgreSQL's binary COPY stream (the run's "
            f"format), compressed (and encrypted) as the deployment and the run's config say, from the same snapshot as "
            f"the set's other tables.",
            group_name=BACKUP_GROUP,
            kinds={"postgres", "csv"},
            skippable=True,
        )
        for table, asset in ASSET_BY_TABLE.items()
    ]
    + [
        dg.AssetSpec(
            OTHER_TABLES,
            description="The files (CSV or binary) of the other pgvector tables a set holds (the backup's `tables` config: a "
            "PGVectorStore table, LlamaIndex's data_* tables, your own), from the same snapshot as the set's other "
            "tables. Empty unless a backup names such tables: a deployment that backs up only LangChain's two tables "
            "never fills it, and its checks then say 'not applicable'.",
            group_name=BACKUP_GROUP,
            kinds={"postgres", "csv"},
            skippable=True,
        )
    ],
    check_specs=[
        dg.AssetCheckSpec(name, asset=asset, description=description, blocking=name == FILES_CHECK)
        for asset in BACKUP_ASSET_KEYS
        for name, description in SET_CHECKS.items()
    ],
    partitions_def=backup_partitions,
)
def vector_store_backup(
    context: dg.AssetExecutionContext,
    config: BackupConfig,
    pgvector: PgVectorResource,
    backup_store: BackupStoreResource,
) -> Iterator[dg.MaterializeResult[None] | dg.AssetCheckResult]:
    """Stream every table with COPY ... TO STDOUT inside one REPEATABLE READ transaction into a backup set."""
    with failures_reported(context, max_retries=CONNECTION_RETRIES):
        if BACKFILL_TAG in context.run.tags:
            raise InvalidParams(
                "Backfills of the backup assets are refused: a set is stamped with the time it is taken, so a "
                "backfill would label today's data with the partitions' past times. Back up now with "
                "request_vector_backup_job, or the schedule."
            )
        task, timestamp = backup_set_of(context.partition_key)
        store = backup_store.store()
        choices = BackupChoices.of(config.request())
        check_stamped_now(timestamp, backup_store.timestamp_window_s)
        context.log.info(
            f"Backing up {pgvector.redacted_dsn} (schema {pgvector.db_schema}) as set {timestamp} "
            f"of task {task} in {store.where}."
        )
        result = pgvector.get_engine(store).back_up(task, timestamp, choices, log=context.log)
    context.instance.add_run_tags(context.run_id, backed_up_tags(result))
    for asset_key, metadata in materializations(result):
        yield dg.MaterializeResult(asset_key=asset_key, metadata=metadata)
    checks, sets = set_checks(result, store, context.log)
    for fields in checks:
        yield dg.AssetCheckResult(**fields)
    # A listing right after this run includes its set.
    context.log_event(inventory_refreshed(store.where, sets))


class CheckFields(TypedDict):
    """One check of a backup asset, as the fields of an AssetCheckResult or AssetCheckEvaluation."""

    asset_key: dg.AssetKey
    check_name: str
    passed: bool
    severity: dg.AssetCheckSeverity
    description: str
    metadata: Metadata


def set_checks(result: BackupResult, store: BackupStore, log: Log) -> tuple[list[CheckFields], list[BackupSetInfo]]:
    """The checks of the set `result` wrote (read back from the store) as the fields of an AssetCheckResult or
    AssetCheckEvaluation, one per declared check of each backup asset; and the store's sets once checked (listed
    again when the checks found the set damaged: it no longer lists as complete)."""
    checks, sets = check_written_set(store, result, log)
    materialized = {asset_of(t.table) for t in result.tables}
    fields: list[CheckFields] = []
    for asset_key in BACKUP_ASSET_KEYS:
        for check in checks:
            if asset_key not in materialized:
                # Every declared check must report (Dagster fails the step otherwise): an asset this set does not hold
                # has nothing to check, which the result says rather than a plain pass.
                check = SetCheck(
                    check.name,
                    True,
                    f"Not applicable: set {result.timestamp} holds no table of this asset (only backups that name "
                    f"other tables in `tables` fill it).",
                    True,
                    {"applicable": False},
                )
            fields.append(
                {
                    "asset_key": asset_key,
                    "check_name": check.name,
                    "passed": check.passed,
                    "severity": dg.AssetCheckSeverity.WARN if check.warn_only else dg.AssetCheckSeverity.ERROR,
                    "description": check.description,
                    "metadata": {"backup_set": partition_key(result.task, result.timestamp), **check.metadata},
                }
            )
    return fields, sets


def backed_up_tags(result: BackupResult) -> dict[str, str]:
    """The run tags that say what a backup wrote: rows of every table, and the set's bytes as stored."""
    return result_tags(result.rows, result.stored_bytes)


def materializations(result: BackupResult) -> list[tuple[dg.AssetKey, Metadata]]:
    """The backup assets a result materializes, each with its metadata: LangChain's tables one by one, the other
    tables together."""
    done = [(ASSET_BY_TABLE[t.table], backup_metadata(result, t)) for t in result.tables if t.table in ASSET_BY_TABLE]
    others = [table for table in result.tables if table.table not in ASSET_BY_TABLE]
    return done + ([(OTHER_TABLES, other_tables_metadata(result, others))] if others else [])


def other_tables_metadata(result: BackupResult, tables: list[TableBackup]) -> Metadata:
    """Materialization metadata of the set's tables besides LangChain's: one row per table."""
    columns = {"table": "string", "file": "string", "rows": "int", "content_bytes": "int", "stored_bytes": "int"}
    columns.update({"references": "string", "row_filter": "string", "sha256": "string"})
    records = [
        dg.TableRecord(
            {
                "table": t.table,
                "file": t.entry.file,
                "rows": t.entry.rows,
                "content_bytes": t.entry.bytes,
                "stored_bytes": t.entry.file_bytes,
                "references": ", ".join(t.entry.references) or "-",
                "row_filter": t.entry.row_filter or "every row",
                "sha256": t.entry.sha256,
            }
        )
        for t in tables
    ]
    schema = dg.TableSchema(columns=[dg.TableColumn(name, kind) for name, kind in columns.items()])
    return {
        "backup_dir": dg.MetadataValue.path(result.location),
        "manifest": manifest_name(result.timestamp),
        "tables": dg.MetadataValue.table(records=records, schema=schema),
        "rows": sum(t.entry.rows for t in tables),
        "source_database": result.source,
        "set_duration_s": round(result.duration_s, 3),
        **({"note": result.note} if result.note else {}),
    }


def backup_metadata(result: BackupResult, table: TableBackup) -> Metadata:
    """Materialization metadata of one table of a backup result, in the order the UI shows it."""
    metadata = set_file_metadata(
        location=result.location,
        file_name=table.entry.file,
        size_bytes=table.entry.file_bytes,
        entry=table.entry,
        manifest_name=manifest_name(result.timestamp),
    )
    metadata.update(
        {
            "export_duration_s": table.entry.duration_s,
            "source_database": result.source,
            "pgvector_version": result.pgvector_version,
            "langchain_layout": result.langchain_layout,
            "set_duration_s": round(result.duration_s, 3),
            **({"note": result.note} if result.note else {}),
        }
    )
    metadata.update(encryption_metadata(result.encrypted_to))
    if table.table == DEFAULT_TABLES.embedding_table:
        metadata["embedding_dimensions"] = dg.MetadataValue.json(result.embedding_dimensions)
        metadata.update(collections_metadata(result.collections))
    for stats in result.truncated:
        if stats.table == table.table:
            metadata["truncated_rows_before"] = stats.rows_before
            metadata["truncated_rows_after"] = stats.rows_after
            metadata["truncate_duration_s"] = round(stats.duration_s, 3)
    return metadata
