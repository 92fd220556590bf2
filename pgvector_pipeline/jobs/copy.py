"""vector_copy_job: copy a backup set between the backup store and the other store (local <-> S3), verified."""

import os
from collections.abc import Iterator

import dagster as dg

from pgvector_pipeline.assets.inventory import inventory_refreshed
from pgvector_pipeline.contract import (
    BACKUP_SET_TAG,
    COPY_FROM_OTHER,
    COPY_JOB,
    OTHER_STORE_METADATA,
    RESULT_METADATA,
    partition_key,
    result_tags,
)
from pgvector_pipeline.failures import failures_reported
from pgvector_pipeline.operations.copy import copy_set
from pgvector_pipeline.resources import BackupStoreResource, OtherBackupStoreResource
from pgvector_pipeline.resources.backup_store import OTHER_ROOT_ENV
from pgvector_pipeline.run_config import request_config
from pgvector_pipeline.run_requests import CopyRequest
from pgvector_pipeline.sizes import human_size
from pgvector_pipeline.store.layout import GLOBAL_TASK_KEY
from pgvector_pipeline.store.naming import LATEST, latest_note


class CopyConfig(request_config(CopyRequest)):  # type: ignore[misc]  # built from CopyRequest's fields
    """Run config of copy_backup_set: which set, and which way."""


@dg.op(
    out=dg.Out(dg.Nothing),
    description=(
        "Copy one set to the other store under the same task and timestamp, streaming each file as stored and "
        "verifying its sha256 and the CSV's inside it, then reading the copy back; a set that exists there is "
        "never overwritten."
    ),
)
def copy_backup_set(
    context: dg.OpExecutionContext,
    config: CopyConfig,
    backup_store: BackupStoreResource,
    other_backup_store: OtherBackupStoreResource,
) -> Iterator[dg.Output[None]]:
    """Locate the set in the source store and copy it into the target store."""
    with failures_reported():
        request: CopyRequest = config.request()
        stores = (backup_store.store(), other_backup_store.store())
        source, target = stores[::-1] if request.direction == COPY_FROM_OTHER else stores
        backup_set = source.locate(task_id=request.task_id or GLOBAL_TASK_KEY, timestamp=request.timestamp)
        if request.timestamp == LATEST:
            context.log.info(latest_note(backup_set))
        context.instance.add_run_tags(
            context.run_id, {BACKUP_SET_TAG: partition_key(backup_set.task, backup_set.timestamp)}
        )
        result = copy_set(backup_set, target, log=context.log.info)
    rows = sum(backup_set.rows(table) or 0 for table in backup_set.tables)
    context.instance.add_run_tags(context.run_id, result_tags(rows, result.total_bytes))
    if request.direction == COPY_FROM_OTHER:
        # The discovery sensor registers the set's partition on its next tick; the inventory shows it now.
        context.log_event(inventory_refreshed(target.where, target.list_sets()))
    yield dg.Output(
        None,
        metadata={
            "backup_set": partition_key(result.task, result.timestamp),
            "from": dg.MetadataValue.path(result.source),
            "to": dg.MetadataValue.path(result.target),
            "bytes": result.total_bytes,
            "size": human_size(result.total_bytes),
            "duration_s": round(result.duration_s, 3),
            "verified": "sha256 of every file and of the CSV inside it, at the source and read back at the target",
            RESULT_METADATA: dg.MetadataValue.json({"source": result.source, "target": result.target}),
        },
    )


def build_vector_copy_job() -> dg.JobDefinition:
    """vector_copy_job, saying in its metadata where the other store is ({OTHER_ROOT_ENV} of the code server when it
    loads the code location, as the schedules' cron expressions are read): a client refuses a copy before launching
    it when there is none (run and code server share that environment)."""
    other = os.environ.get(OTHER_ROOT_ENV, "")

    @dg.job(
        name=COPY_JOB,
        description=(
            f"Copy a backup set between the backup store and the other store ({OTHER_ROOT_ENV}): local disk and S3, "
            f"either way, every checksum verified."
            + ("" if other else f" {OTHER_ROOT_ENV} is not set for this code server: every copy fails until it is.")
        ),
        metadata={OTHER_STORE_METADATA: other},
    )
    def vector_copy_job() -> None:
        """Copy one backup set between the two stores."""
        copy_backup_set()

    return vector_copy_job
