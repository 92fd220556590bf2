"""The backup CSVs of both LangChain tables, materialized together from one snapshot."""

import dagster as dg
from pydantic import Field

from pgvector_pipeline.assets.inventory import BACKUP_GROUP, inventory_refreshed
from pgvector_pipeline.assets.metadata import set_file_metadata
from pgvector_pipeline.backup import BackupResult, TableBackup
from pgvector_pipeline.contract import BACKFILL_TAG
from pgvector_pipeline.errors import InvalidParams
from pgvector_pipeline.failures import failures_reported
from pgvector_pipeline.names import COLLECTION_TABLE, EMBEDDING_TABLE
from pgvector_pipeline.partitions import backup_partitions, backup_set_of
from pgvector_pipeline.resources import BackupStoreResource, PgVectorResource
from pgvector_pipeline.store.layout import check_stamped_now

COLLECTION_BACKUP = dg.AssetKey(f"{COLLECTION_TABLE}_backup")
EMBEDDING_BACKUP = dg.AssetKey(f"{EMBEDDING_TABLE}_backup")
ASSET_BY_TABLE = {COLLECTION_TABLE: COLLECTION_BACKUP, EMBEDDING_TABLE: EMBEDDING_BACKUP}

# Lost connections and server restarts are retried (exponential back-off, see failures.py); nothing else.
CONNECTION_RETRIES = 3


class BackupConfig(dg.Config):
    """Run config of vector_store_backup (vector_backup_job)."""

    truncate_after_backup: bool = Field(
        default=False,
        description=(
            "After both CSVs and the manifest are written and re-read with matching checksums, truncate "
            "langchain_pg_embedding in the same transaction (writers are held off from the snapshot on, "
            "so no row is lost). Never happens if anything failed."
        ),
    )
    create_task_dir: bool = Field(
        default=False,
        description="Create {root}/{task_id}/ when it does not exist. Off: a missing task directory is an error.",
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            COLLECTION_BACKUP,
            description="CSV of langchain_pg_collection (with header), from the same snapshot as the embeddings.",
            group_name=BACKUP_GROUP,
            kinds={"postgres", "csv"},
        ),
        dg.AssetSpec(
            EMBEDDING_BACKUP,
            description="CSV of langchain_pg_embedding (with header), from the same snapshot as the collections.",
            group_name=BACKUP_GROUP,
            kinds={"postgres", "csv"},
        ),
    ],
    partitions_def=backup_partitions,
)
def vector_store_backup(
    context: dg.AssetExecutionContext,
    config: BackupConfig,
    pgvector: PgVectorResource,
    backup_store: BackupStoreResource,
):
    """Stream both tables with COPY ... TO STDOUT inside one REPEATABLE READ transaction into a backup set."""
    with failures_reported(context, max_retries=CONNECTION_RETRIES):
        if BACKFILL_TAG in context.run.tags:
            raise InvalidParams(
                "Backfills of the backup assets are refused: a set is stamped with the time it is taken, so a "
                "backfill would label today's data with the partitions' past times. Back up now with "
                "request_vector_backup_job, or the schedule."
            )
        task, timestamp = backup_set_of(context.partition_key)
        store = backup_store.store()
        check_stamped_now(timestamp, backup_store.timestamp_window_s)
        context.log.info(
            f"Backing up {pgvector.redacted_dsn} (schema {pgvector.db_schema}) as set {timestamp} "
            f"of task {task} in {store.where}."
        )
        result = pgvector.back_up(
            store,
            task,
            timestamp,
            truncate_after_backup=config.truncate_after_backup,
            create_task_dir=config.create_task_dir,
            log=context.log,
        )
    for table in result.tables:
        yield dg.MaterializeResult(asset_key=ASSET_BY_TABLE[table.table], metadata=backup_metadata(result, table))
    # A listing right after this run includes its set.
    context.log_event(inventory_refreshed(store.where, store.list_sets()))


def backup_metadata(result: BackupResult, table: TableBackup) -> dict:
    """Materialization metadata of one table of a backup result, in the order the UI shows it."""
    metadata = set_file_metadata(
        path=table.path,
        rows=table.rows,
        size_bytes=table.bytes,
        sha256=table.sha256,
        columns=[(c.name, c.type) for c in table.columns],
        manifest_path=result.manifest_path,
    )
    metadata.update(
        {
            "export_duration_s": round(table.duration_s, 3),
            "source_database": result.source,
            "pgvector_version": result.pgvector_version,
            "langchain_layout": result.langchain_layout,
            "set_duration_s": round(result.duration_s, 3),
        }
    )
    if table.table == EMBEDDING_TABLE:
        metadata["embedding_dimensions"] = dg.MetadataValue.json(result.embedding_dimensions)
    for stats in result.truncated:
        if stats.table == table.table:
            metadata["truncated_rows_before"] = stats.rows_before
            metadata["truncated_rows_after"] = stats.rows_after
            metadata["truncate_duration_s"] = round(stats.duration_s, 3)
    return metadata
