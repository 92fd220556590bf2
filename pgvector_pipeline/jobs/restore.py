"""vector_restore_job: load a backup set in one transaction that commits only if every file matches its manifest."""

from typing import Any

import dagster as dg
from pydantic import Field

from pgvector_pipeline.assets.metadata import stats_table
from pgvector_pipeline.contract import (
    BACKUP_SET_TAG,
    MIGRATION_HELP,
    RESTORE_FLAG_HELP,
    RESTORE_JOB,
    Migration,
    RestoreFlags,
    database_tags,
    partition_key,
    result_tags,
)
from pgvector_pipeline.failures import failures_reported
from pgvector_pipeline.partitions import backup_partitions, backup_set_of
from pgvector_pipeline.resources import BackupStoreResource, PgVectorResource
from pgvector_pipeline.run_config import RunConfig
from pgvector_pipeline.store.layout import GLOBAL_TASK_KEY


class RestoreConfig(RunConfig):
    """Run config of restore_vector_backup: which set, which tables, and how."""

    task_id: str = Field(
        default="",
        description="Set to restore, for sets Dagster has not seen: its task id ('global' for {root}/vector_bak/). "
        "Leave empty when launching for a partition.",
    )
    timestamp: str = Field(
        default="", description="Set to restore: its timestamp YYYYMMDD_HHMMSS. Empty: use the partition."
    )
    backup_path: str = Field(
        default="",
        description="Instead of task_id: the set's directory relative to the backup root (e.g. 'task_7/vector_bak'); "
        "must stay inside the root.",
    )
    tables: list[str] = Field(
        default=[], description="Tables to restore, e.g. [langchain_pg_embedding]. Empty: every table the set holds."
    )
    # The switches of contract.RestoreFlags, described once in contract.RESTORE_FLAG_HELP (a test checks they agree).
    truncate_before_restore: bool = Field(default=False, description=RESTORE_FLAG_HELP["truncate_before_restore"][1])
    verify_only: bool = Field(default=False, description=RESTORE_FLAG_HELP["verify_only"][1])
    create_missing: bool = Field(default=False, description=RESTORE_FLAG_HELP["create_missing"][1])
    allow_legacy: bool = Field(default=False, description=RESTORE_FLAG_HELP["allow_legacy"][1])
    fill_extra_columns: bool = Field(default=False, description=RESTORE_FLAG_HELP["fill_extra_columns"][1])
    replace_collections: bool = Field(default=False, description=RESTORE_FLAG_HELP["replace_collections"][1])
    in_place: bool = Field(default=False, description=RESTORE_FLAG_HELP["in_place"][1])
    collections: list[str] = Field(
        default=[],
        description="Restore only these collections (by name) and their embeddings; empty: every row of the set. "
        "With replace_collections, they replace the target's collections of the same names.",
    )
    rename: dict[str, str] = Field(
        default={},
        description="Restore collections under new names: {name in the set: name in the target}. A renamed "
        "collection gets a new key and its embeddings follow (their ids are kept). Renamed collections are "
        "restored even when collections leaves them out.",
    )

    # The settings of contract.Migration, described once in contract.MIGRATION_HELP.
    migrate_to: str = Field(default="", description=MIGRATION_HELP["migrate_to"][1])
    store_table: str = Field(default="", description=MIGRATION_HELP["store_table"][1])
    metadata_columns: list[str] = Field(default=[], description=MIGRATION_HELP["metadata_columns"][1])

    def flags(self) -> RestoreFlags:
        """The restore switches of this config."""
        return RestoreFlags(**{name: getattr(self, name) for name in RESTORE_FLAG_HELP})

    def migration(self) -> Migration:
        """The migration settings of this config (none set: the set's own layout)."""
        return Migration(self.migrate_to, self.store_table, tuple(self.metadata_columns))


@dg.op(
    out=dg.Out(dg.Nothing),
    description="Load a backup set in one transaction, committed only if every file matches its manifest.",
)
def restore_vector_backup(
    context: dg.OpExecutionContext, config: RestoreConfig, pgvector: PgVectorResource, backup_store: BackupStoreResource
):
    """Locate the set (partition or config), verify it, and restore it in one transaction."""
    with failures_reported():
        if config.timestamp or config.backup_path:
            task, timestamp = (config.task_id or GLOBAL_TASK_KEY), config.timestamp
        elif context.has_partition_key:
            task, timestamp = backup_set_of(context.partition_key)
        else:
            task, timestamp = config.task_id, ""
        backup_set = backup_store.store().locate(
            task_id=task, timestamp=timestamp, backup_path=config.backup_path or None
        )
        context.instance.add_run_tags(
            context.run_id, {BACKUP_SET_TAG: partition_key(backup_set.task, backup_set.timestamp)}
        )
        context.log.info(f"Restoring set {backup_set.timestamp} of {backup_set.location} into {pgvector.redacted_dsn}.")
        result = pgvector.restore(
            backup_set,
            config.flags(),
            tables=config.tables or None,
            collections=config.collections,
            rename=config.rename,
            migration=config.migration(),
            log=context.log,
        )
    context.instance.add_run_tags(context.run_id, result_tags(result.rows_restored, result.bytes_read))
    metadata: dict[str, Any] = {
        "backup_set": partition_key(backup_set.task, backup_set.timestamp),
        "backup_dir": dg.MetadataValue.path(backup_set.location),
        "collections": ", ".join(config.collections or config.rename) or "all of the set's",
        **({"renamed": ", ".join(f"{old} -> {new}" for old, new in config.rename.items())} if config.rename else {}),
        **({"migrated_to": config.migrate_to} if config.migrate_to else {}),
        **({"swap": result.swap} if result.swap else {}),
        "target": result.target,
        "verify_only": result.verify_only,
        "created": ", ".join(result.created) or "nothing",
        "duration_s": round(result.duration_s, 3),
        "tables": stats_table(result.tables, ["rows_before", "rows_restored", "rows_after", "duration_s"]),
    }
    for stats in result.tables:
        metadata[f"{stats.table}.rows_restored"] = stats.rows_restored
        if stats.filled_columns:
            metadata[f"{stats.table}.filled_columns"] = ", ".join(stats.filled_columns)
    yield dg.Output(None, metadata=metadata)


@dg.job(
    name=RESTORE_JOB,
    partitions_def=backup_partitions,
    tags=database_tags(),
    description="Restore a backup set (pick its partition, or name it in config) into the database of the pgvector resource.",
)
def vector_restore_job():
    """Restore one backup set into the pgvector resource's database."""
    restore_vector_backup()
