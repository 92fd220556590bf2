"""vector_retention_job: delete old backup sets by policy, and their partition keys."""

from collections.abc import Iterator

import dagster as dg

from pgvector_pipeline.assets.inventory import inventory_refreshed
from pgvector_pipeline.contract import RETENTION_JOB
from pgvector_pipeline.failures import failures_reported
from pgvector_pipeline.partitions import remove_unused_partition_keys
from pgvector_pipeline.resources import BackupStoreResource
from pgvector_pipeline.run_config import request_config
from pgvector_pipeline.run_requests import RetentionRequest
from pgvector_pipeline.sizes import human_size
from pgvector_pipeline.store.retention import RetentionPolicy, apply_retention, remove_interrupted_everywhere


class RetentionConfig(request_config(RetentionRequest)):  # type: ignore[misc]  # built from RetentionRequest's fields
    """Run config of delete_old_backup_sets."""


@dg.op(
    out=dg.Out(dg.Nothing),
    description=(
        "Delete the sets no rule keeps (the newest complete set of a location and sets being written are always "
        "kept), log each deletion in its location's log, and remove partition keys no set uses any more."
    ),
)
def delete_old_backup_sets(
    context: dg.OpExecutionContext, config: RetentionConfig, backup_store: BackupStoreResource
) -> Iterator[dg.Output[None]]:
    """Apply the retention policy to every set under the root."""
    with failures_reported():
        request: RetentionRequest = config.request()
        policy = RetentionPolicy(request.keep_newest, request.max_age_days)
        store = backup_store.store()
        context.log.info(f"Retention in {store.where}: {policy.describe()}{' (dry run)' if request.dry_run else ''}.")
        if not request.dry_run:
            remove_interrupted_everywhere(store, context.log.info)
        result = apply_retention(
            store.list_sets(),
            policy,
            dry_run=request.dry_run,
            log_info=context.log.info,
            warn=context.log.warning,
        )
    removed_keys: list[str] = []
    if not request.dry_run:
        remaining = store.list_sets()
        removed_keys = remove_unused_partition_keys(context.instance, result.deleted, remaining)
        context.log_event(inventory_refreshed(store.where, remaining))
    verb = "Would delete" if request.dry_run else "Deleted"
    context.log.info(f"{verb} {len(result.deleted)} sets, {human_size(result.bytes_freed)}.")
    records = [
        dg.TableRecord(
            {
                "task_id": d.backup_set.task,
                "timestamp": d.backup_set.timestamp,
                "status": d.backup_set.status,
                "bytes": d.backup_set.total_bytes,
                "action": ("would delete" if request.dry_run else "deleted")
                if d.delete and d.backup_set not in result.skipped_busy
                else "kept",
                "reason": d.reason,
            }
        )
        for d in result.decisions
    ]
    yield dg.Output(
        None,
        metadata={
            "policy": policy.describe(),
            "dry_run": request.dry_run,
            "sets_deleted": 0 if request.dry_run else len(result.deleted),
            "sets_to_delete": len(result.deleted) if request.dry_run else 0,
            "bytes_freed": 0 if request.dry_run else result.bytes_freed,
            "freed": human_size(0 if request.dry_run else result.bytes_freed),
            "busy_sets_skipped": len(result.skipped_busy),
            "partition_keys_removed": ", ".join(removed_keys) or "none",
            "decisions": dg.MetadataValue.table(
                records=records[:1000],
                schema=dg.TableSchema(
                    columns=[
                        dg.TableColumn("task_id"),
                        dg.TableColumn("timestamp"),
                        dg.TableColumn("status"),
                        dg.TableColumn("bytes", "int"),
                        dg.TableColumn("action"),
                        dg.TableColumn("reason"),
                    ]
                ),
            ),
        },
    )


@dg.job(
    name=RETENTION_JOB,
    description=(
        "Delete old backup sets by policy: keep_newest per location and/or max_age_days. A dry run unless "
        "dry_run is false; never the newest complete set of a location, never a set being written."
    ),
)
def vector_retention_job() -> None:
    """Delete old backup sets by policy."""
    delete_old_backup_sets()
