"""Jobs that make backups: the partitioned asset job (you name the set), and a request job that claims
a new set itself (what the UI, the GraphQL client and the demo use)."""

import dagster as dg
from pydantic import Field

from pgvector_pipeline.assets.backup import (
    ASSET_BY_TABLE,
    COLLECTION_BACKUP,
    CONNECTION_RETRIES,
    EMBEDDING_BACKUP,
    backup_metadata,
    vector_store_backup,
)
from pgvector_pipeline.failures import failures_reported
from pgvector_pipeline.partitions import backup_partitions, register_backup_partition
from pgvector_pipeline.resources import BackupStoreResource, PgVectorResource
from pgvector_pipeline.store.layout import task_key

BACKUP_JOB_NAME = "vector_backup_job"
REQUEST_JOB_NAME = "request_vector_backup_job"
# The set a request run claimed, as a partition key of the backup assets ("task|timestamp").
BACKUP_SET_TAG = "pgvector_pipeline/backup_set"

backup_job = dg.define_asset_job(
    BACKUP_JOB_NAME,
    selection=dg.AssetSelection.assets(COLLECTION_BACKUP, EMBEDDING_BACKUP),
    partitions_def=backup_partitions,
    description="Back up both LangChain tables from one snapshot into the set named by the partition.",
)


def backup_run_config(truncate_after_backup: bool = False, create_task_dir: bool = False) -> dict:
    """Run config of backup_job."""
    config = {"truncate_after_backup": truncate_after_backup, "create_task_dir": create_task_dir}
    return {"ops": {vector_store_backup.op.name: {"config": config}}}


class BackupRequestConfig(dg.Config):
    task_id: str = Field(
        default="",
        description=(
            "Task whose {root}/{task_id}/vector_bak/ receives the set (letters, digits, underscores). "
            "Leave empty, or 'global', for the global {root}/vector_bak/."
        ),
    )
    truncate_after_backup: bool = Field(
        default=False,
        description="Truncate langchain_pg_embedding after the backup is written and verified (never if it failed).",
    )
    create_task_dir: bool = Field(
        default=False, description="Create {root}/{task_id}/ when missing instead of failing."
    )


def request_run_config(task_id: str | None = None, truncate_after_backup: bool = False, create_task_dir: bool = False) -> dict:
    """Run config of request_backup_job (shared by the GraphQL client and the demo)."""
    config = {"task_id": task_id or "", "truncate_after_backup": truncate_after_backup, "create_task_dir": create_task_dir}
    return {"ops": {request_vector_backup.name: {"config": config}}}


@dg.op(
    out=dg.Out(dg.Nothing),
    description=(
        "Claim a new set (the current second, or the next free one: never one another run has), register its "
        "partition, back both tables up into it and record the materializations of the backup assets."
    ),
)
def request_vector_backup(
    context: dg.OpExecutionContext,
    config: BackupRequestConfig,
    pgvector: PgVectorResource,
    backup_store: BackupStoreResource,
):
    claimed: list[dg.MultiPartitionKey] = []

    def register(timestamp: str) -> None:
        key = register_backup_partition(context.instance, task, timestamp)
        context.instance.add_run_tags(context.run_id, {BACKUP_SET_TAG: str(key)})
        context.log.info(f"Claimed backup set {key}.")
        claimed.append(key)

    with failures_reported(context, max_retries=CONNECTION_RETRIES):
        task = task_key(config.task_id.strip())
        result = pgvector.back_up(
            backup_store.root_path,
            task,
            None,
            truncate_after_backup=config.truncate_after_backup,
            create_task_dir=config.create_task_dir,
            file_mode=backup_store.mode,
            on_claim=register,
            log=context.log,
        )
    for table in result.tables:
        yield dg.AssetMaterialization(
            asset_key=ASSET_BY_TABLE[table.table], partition=str(claimed[-1]), metadata=backup_metadata(result, table)
        )
    yield dg.Output(None, metadata={"backup_set": str(claimed[-1]), "directory": dg.MetadataValue.path(str(result.directory))})


@dg.job(
    name=REQUEST_JOB_NAME,
    description=(
        "Back up now into a new set: give a task id (or nothing for the global directory). The timestamp is "
        "claimed atomically in the target directory, so starts at the same moment get distinct sets."
    ),
)
def request_backup_job():
    request_vector_backup()
