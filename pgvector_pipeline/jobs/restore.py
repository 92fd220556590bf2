"""vector_restore_job: load a backup set in one transaction that commits only if every file matches its manifest."""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from pgvector_pipeline.assets.metadata import stats_table
from pgvector_pipeline.contract import (
    BACKUP_SET_TAG,
    RESTORE_JOB,
    database_tags,
    partition_key,
    result_tags,
)
from pgvector_pipeline.failures import failures_reported
from pgvector_pipeline.partitions import backup_partitions, backup_set_of
from pgvector_pipeline.resources import BackupStoreResource, PgVectorResource
from pgvector_pipeline.run_config import request_config
from pgvector_pipeline.run_requests import Migration, RestoreFlags, RestoreRequest
from pgvector_pipeline.store.layout import GLOBAL_TASK_KEY
from pgvector_pipeline.store.naming import LATEST, latest_note


class RestoreConfig(request_config(RestoreRequest)):  # type: ignore[misc]  # built from RestoreRequest's fields
    """Run config of restore_vector_backup: which set, which tables, and how."""

    def flags(self) -> RestoreFlags:
        """The restore switches of this config."""
        request: RestoreRequest = self.request()
        return request.flags

    def migration(self) -> Migration:
        """The migration settings of this config (none set: the set's own layout)."""
        request: RestoreRequest = self.request()
        return request.migration


@dg.op(
    out=dg.Out(dg.Nothing),
    description="Load a backup set in one transaction, committed only if every file matches its manifest.",
)
def restore_vector_backup(
    context: dg.OpExecutionContext, config: RestoreConfig, pgvector: PgVectorResource, backup_store: BackupStoreResource
) -> Iterator[dg.Output[None]]:
    """Locate the set (partition or config), verify it, and restore it in one transaction."""
    with failures_reported():
        request: RestoreRequest = config.request()
        if config.timestamp or config.backup_path:
            task, timestamp = (config.task_id or GLOBAL_TASK_KEY), config.timestamp
        elif context.has_partition_key:
            task, timestamp = backup_set_of(context.partition_key)
        else:
            task, timestamp = config.task_id, ""
        backup_set = backup_store.store().locate(
            task_id=task, timestamp=timestamp, backup_path=config.backup_path or None
        )
        if timestamp == LATEST:
            context.log.info(latest_note(backup_set))
        context.instance.add_run_tags(
            context.run_id, {BACKUP_SET_TAG: partition_key(backup_set.task, backup_set.timestamp)}
        )
        context.log.info(f"Restoring set {backup_set.timestamp} of {backup_set.location} into {pgvector.redacted_dsn}.")
        result = pgvector.get_engine().restore(backup_set, request, log=context.log)
    context.instance.add_run_tags(context.run_id, result_tags(result.rows_restored, result.bytes_read))
    metadata: dict[str, Any] = {
        "backup_set": partition_key(backup_set.task, backup_set.timestamp),
        "backup_dir": dg.MetadataValue.path(backup_set.location),
        "collections": ", ".join(config.collections or config.rename) or "all of the set's",
        **({"renamed": ", ".join(f"{old} -> {new}" for old, new in config.rename.items())} if config.rename else {}),
        **({"migrated_to": config.migrate_to} if config.migrate_to else {}),
        **({"note": request.note} if request.note else {}),
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
def vector_restore_job() -> None:
    """Restore one backup set into the pgvector resource's database."""
    restore_vector_backup()
