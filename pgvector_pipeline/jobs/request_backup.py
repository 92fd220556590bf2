"""request_vector_backup_job: back up now into a set it claims itself (what the UI, the GraphQL client and
the demo start)."""

from collections.abc import Iterator

import dagster as dg

from pgvector_pipeline.assets.backup import (
    CONNECTION_RETRIES,
    backed_up_tags,
    materializations,
    set_checks,
)
from pgvector_pipeline.assets.inventory import inventory_refreshed
from pgvector_pipeline.contract import BACKUP_SET_TAG, REQUEST_BACKUP_JOB, database_tags
from pgvector_pipeline.failures import failures_reported
from pgvector_pipeline.operations.backup import BackupChoices
from pgvector_pipeline.partitions import register_backup_partition
from pgvector_pipeline.resources import BackupStoreResource, PgVectorResource
from pgvector_pipeline.run_config import request_config
from pgvector_pipeline.run_requests import BackupRequest
from pgvector_pipeline.store.layout import task_key


class BackupRequestConfig(request_config(BackupRequest)):  # type: ignore[misc]  # built from BackupRequest's fields
    """Run config of request_vector_backup: the backup's config, and the task whose directory gets the set."""


@dg.op(
    out=dg.Out(dg.Nothing),
    description=(
        "Claim a new set (the current second, or the next free one: never one another run has), register its "
        "partition, back every table up into it and record the materializations of the backup assets."
    ),
)
def request_vector_backup(
    context: dg.OpExecutionContext,
    config: BackupRequestConfig,
    pgvector: PgVectorResource,
    backup_store: BackupStoreResource,
) -> Iterator[dg.AssetMaterialization | dg.AssetCheckEvaluation | dg.Output[None]]:
    """Claim a new set, register its partition, back up, and record both assets' materializations."""
    claimed: list[str] = []

    def register(timestamp: str) -> None:
        key = register_backup_partition(context.instance, task, timestamp)
        context.instance.add_run_tags(context.run_id, {BACKUP_SET_TAG: str(key)})
        context.log.info(f"Claimed backup set {key}.")
        claimed.append(key)

    with failures_reported(context, max_retries=CONNECTION_RETRIES):
        request: BackupRequest = config.request()
        task = task_key(request.task_id)
        store = backup_store.store()
        choices = BackupChoices.of(request)
        result = pgvector.get_engine(store).back_up(task, None, choices, on_claim=register, log=context.log)
    context.instance.add_run_tags(context.run_id, backed_up_tags(result))
    for asset_key, metadata in materializations(result):
        yield dg.AssetMaterialization(asset_key=asset_key, partition=str(claimed[-1]), metadata=metadata)
    # The same checks as the asset job's, reported as evaluations of the backup assets' declared checks.
    checks, sets = set_checks(result, store, context.log)
    for fields in checks:
        yield dg.AssetCheckEvaluation(**fields)
    yield inventory_refreshed(store.where, sets)
    yield dg.Output(
        None, metadata={"backup_set": str(claimed[-1]), "directory": dg.MetadataValue.path(result.location)}
    )


@dg.job(
    name=REQUEST_BACKUP_JOB,
    tags=database_tags(),
    description=(
        "Back up now into a new set: give a task id (or nothing for the global directory). The timestamp is "
        "claimed atomically in the target directory, so starts at the same moment get distinct sets."
    ),
)
def request_vector_backup_job() -> None:
    """Back up now into a set this run claims."""
    request_vector_backup()
