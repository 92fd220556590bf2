"""What other programs use to launch and read runs over GraphQL: the code location's job, op, asset and
partition names, the shapes of their run config, and the run tags. No Dagster import here, so the
client (and any script) learns these without loading the code location; the Dagster definitions take
their names from here too, and a test checks that they agree."""

LOCATION_NAME = "pgvector_pipeline"
# The repository name Dagster gives a code location defined with `Definitions`.
REPOSITORY_NAME = "__repository__"

BACKUP_JOB = "vector_backup_job"
REQUEST_BACKUP_JOB = "request_vector_backup_job"
RESTORE_JOB = "vector_restore_job"
TRUNCATE_JOB = "vector_truncate_job"
INVENTORY_JOB = "vector_inventory_job"

BACKUP_OP = "vector_store_backup"
REQUEST_BACKUP_OP = "request_vector_backup"
RESTORE_OP = "restore_vector_backup"
TRUNCATE_OP = "truncate_vector_tables"

INVENTORY_ASSET = "vector_backup_inventory"

TASK_PARTITIONS = "vector_backup_task"
TIMESTAMP_PARTITIONS = "vector_backup_timestamp"
TASK_DIMENSION = "task_id"
TIMESTAMP_DIMENSION = "timestamp"
# Dagster joins the keys of a multi-partition key with "|", dimensions ordered by name.
MULTI_KEY_SEPARATOR = "|"
PARTITION_TAG = "dagster/partition"
# Dagster's tag on every run of a backfill.
BACKFILL_TAG = "dagster/backfill"
# The set a request run claimed, as a partition key of the backup assets ("task|timestamp").
BACKUP_SET_TAG = "pgvector_pipeline/backup_set"


def partition_key(task: str, timestamp: str) -> str:
    """The backup assets' partition key of a set (task key, then timestamp; validate them first)."""
    return f"{task}{MULTI_KEY_SEPARATOR}{timestamp}"


def backup_run_config(truncate_after_backup: bool = False, create_task_dir: bool = False) -> dict:
    """Run config of vector_backup_job (the set is the run's partition)."""
    config = {"truncate_after_backup": truncate_after_backup, "create_task_dir": create_task_dir}
    return {"ops": {BACKUP_OP: {"config": config}}}


def request_run_config(
    task_id: str | None = None, truncate_after_backup: bool = False, create_task_dir: bool = False
) -> dict:
    """Run config of request_vector_backup_job: task_id None or '' backs up into the global directory."""
    config = {
        "task_id": task_id or "",
        "truncate_after_backup": truncate_after_backup,
        "create_task_dir": create_task_dir,
    }
    return {"ops": {REQUEST_BACKUP_OP: {"config": config}}}
