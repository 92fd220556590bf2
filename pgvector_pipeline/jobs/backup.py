"""Jobs that start backups: the partitioned asset job, and a request job that picks the partition for you."""

import dagster as dg
from pydantic import Field

from pgvector_pipeline.assets.backup import COLLECTION_BACKUP, EMBEDDING_BACKUP, vector_store_backup
from pgvector_pipeline.failures import failures_reported
from pgvector_pipeline.partitions import backup_partitions, fresh_timestamp, register_backup_partition
from pgvector_pipeline.resources import BackupStoreResource
from pgvector_pipeline.store.layout import check_task_dir, task_key

BACKUP_JOB_NAME = "vector_backup_job"
REQUEST_JOB_NAME = "request_vector_backup_job"
# Tags a request run leaves for backup_request_sensor.
REQUESTED_TASK_TAG = "pgvector_pipeline/requested_task"
REQUESTED_TIMESTAMP_TAG = "pgvector_pipeline/requested_timestamp"
REQUESTED_TRUNCATE_TAG = "pgvector_pipeline/truncate_after_backup"
REQUESTED_CREATE_DIR_TAG = "pgvector_pipeline/create_task_dir"

backup_job = dg.define_asset_job(
    BACKUP_JOB_NAME,
    selection=dg.AssetSelection.assets(COLLECTION_BACKUP, EMBEDDING_BACKUP),
    partitions_def=backup_partitions,
    description="Back up both LangChain tables from one snapshot into the set named by the partition.",
)


def backup_run_config(truncate_after_backup: bool = False, create_task_dir: bool = False) -> dict:
    """Run config of backup_job (shared by the sensor, the GraphQL client and the demo)."""
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


@dg.op(description="Check the request, pick a fresh timestamp, register the set's partition for the backup sensor.")
def request_vector_backup(
    context: dg.OpExecutionContext, config: BackupRequestConfig, backup_store: BackupStoreResource
) -> None:
    with failures_reported():
        task = task_key(config.task_id.strip())
        directory = check_task_dir(backup_store.root_path, task, config.create_task_dir)
    timestamp = fresh_timestamp(context.instance)
    key = register_backup_partition(context.instance, task, timestamp)
    context.instance.add_run_tags(
        context.run_id,
        {
            REQUESTED_TASK_TAG: task,
            REQUESTED_TIMESTAMP_TAG: timestamp,
            REQUESTED_TRUNCATE_TAG: str(config.truncate_after_backup).lower(),
            REQUESTED_CREATE_DIR_TAG: str(config.create_task_dir).lower(),
        },
    )
    context.log.info(
        f"Registered backup set {key} ({directory}); backup_request_sensor launches {BACKUP_JOB_NAME} for it."
    )


@dg.job(
    name=REQUEST_JOB_NAME,
    description=(
        "Start a backup without typing a timestamp: give a task id (or nothing for the global directory). "
        "The backup itself runs as a vector_backup_job run launched by backup_request_sensor."
    ),
)
def request_backup_job():
    request_vector_backup()
