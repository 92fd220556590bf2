"""The backup files of the backed-up tables (both LangChain tables), materialized together from one snapshot."""

import os

import dagster as dg
from pydantic import Field

from pgvector_pipeline.assets.inventory import BACKUP_GROUP, inventory_refreshed
from pgvector_pipeline.assets.metadata import collections_metadata, set_file_metadata
from pgvector_pipeline.backup import BackupChoices, BackupResult, TableBackup
from pgvector_pipeline.contract import BACKFILL_TAG
from pgvector_pipeline.errors import InvalidParams
from pgvector_pipeline.failures import failures_reported
from pgvector_pipeline.partitions import backup_partitions, backup_set_of
from pgvector_pipeline.resources import BackupStoreResource, PgVectorResource
from pgvector_pipeline.store.codecs import CODEC_NAMES, DEFAULT_COMPRESSION, Compression
from pgvector_pipeline.store.layout import check_stamped_now, manifest_name
from pgvector_pipeline.tables import DEFAULT_TABLES

# One asset per backed-up table, named after it: the set's tables come from one snapshot, so they materialize together.
ASSET_BY_TABLE = {name: dg.AssetKey(f"{name}_backup") for name in DEFAULT_TABLES.names}
# The deployment's compression when a run's config names none (see BackupConfig.compression).
COMPRESSION_ENV = "PGVECTOR_BACKUP_COMPRESSION"

# Lost connections and server restarts are retried (exponential back-off, see failures.py); nothing else.
CONNECTION_RETRIES = 3


class BackupConfig(dg.Config):
    """Run config of vector_store_backup (vector_backup_job), and of request_vector_backup with its task id."""

    truncate_after_backup: bool = Field(
        default=False,
        description=(
            f"After every file and the manifest are written and re-read with matching checksums, truncate "
            f"{', '.join(DEFAULT_TABLES.truncated_by_default)} in the same transaction (writers are held off from "
            f"the snapshot on, so no row is lost). Never happens if anything failed."
        ),
    )
    create_task_dir: bool = Field(
        default=False,
        description="Create {root}/{task_id}/ when it does not exist. Off: a missing task directory is an error.",
    )
    compression: str = Field(
        default="",
        description=(
            f"How the set's CSVs are stored: {' | '.join(CODEC_NAMES)}. Empty: ${COMPRESSION_ENV}, else "
            f"{DEFAULT_COMPRESSION.codec} (about a third of the CSV's bytes, as fast as plain). 'none' writes plain "
            f"CSVs that the old system and psql \\copy read as they are."
        ),
    )
    compression_level: int | None = Field(
        default=None, description="The codec's level (zstd 1-19, gzip 1-9). Empty: the codec's default."
    )
    collections: list[str] = Field(
        default=[],
        description=(
            "Back up only these collections (by name) and their embeddings, from one snapshot. Empty: every "
            "collection. The manifest records which ones, and the embeddings of each."
        ),
    )

    def compression_setting(self) -> Compression:
        """The compression of this run, resolved at run time; InvalidParams for an unknown codec or level."""
        codec = self.compression or os.environ.get(COMPRESSION_ENV) or DEFAULT_COMPRESSION.codec
        return Compression(codec, self.compression_level)

    def choices(self) -> BackupChoices:
        """What this run's config chooses, resolved at run time (InvalidParams for bad values)."""
        return BackupChoices(
            truncate_after_backup=self.truncate_after_backup,
            create_task_dir=self.create_task_dir,
            compression=self.compression_setting(),
            collections=tuple(self.collections),
        )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            asset,
            description=f"CSV of {table} (with header; compressed as the run's config says), from the same snapshot "
            f"as the set's other tables.",
            group_name=BACKUP_GROUP,
            kinds={"postgres", "csv"},
        )
        for table, asset in ASSET_BY_TABLE.items()
    ],
    partitions_def=backup_partitions,
)
def vector_store_backup(
    context: dg.AssetExecutionContext,
    config: BackupConfig,
    pgvector: PgVectorResource,
    backup_store: BackupStoreResource,
):
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
        choices = config.choices()
        check_stamped_now(timestamp, backup_store.timestamp_window_s)
        context.log.info(
            f"Backing up {pgvector.redacted_dsn} (schema {pgvector.db_schema}) as set {timestamp} "
            f"of task {task} in {store.where}."
        )
        result = pgvector.back_up(store, task, timestamp, choices, log=context.log)
    for table in result.tables:
        yield dg.MaterializeResult(asset_key=ASSET_BY_TABLE[table.table], metadata=backup_metadata(result, table))
    # A listing right after this run includes its set.
    context.log_event(inventory_refreshed(store.where, store.list_sets()))


def backup_metadata(result: BackupResult, table: TableBackup) -> dict:
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
        }
    )
    if table.table == DEFAULT_TABLES.embedding_table:
        metadata["embedding_dimensions"] = dg.MetadataValue.json(result.embedding_dimensions)
        metadata.update(collections_metadata(result.collections))
    for stats in result.truncated:
        if stats.table == table.table:
            metadata["truncated_rows_before"] = stats.rows_before
            metadata["truncated_rows_after"] = stats.rows_after
            metadata["truncate_duration_s"] = round(stats.duration_s, 3)
    return metadata
