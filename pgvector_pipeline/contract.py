"""What other programs use to launch and read runs over GraphQL: the code location's job, op, asset and
partition names, the shapes of their run config, and the run tags. No Dagster import here, so the
client (and any script) learns these without loading the code location; the Dagster definitions take
their names from here too, and a test checks that they agree."""

from collections.abc import Mapping, Sequence
from typing import Any

from pgvector_pipeline.request_fields import as_config, help_of

# Re-exported (`X as X`): programs import the restore types, the migration targets and the copy's directions from
# the contract. What each operation takes is declared once, in run_requests.
from pgvector_pipeline.run_requests import COPY_FROM_OTHER as COPY_FROM_OTHER
from pgvector_pipeline.run_requests import COPY_TO_OTHER as COPY_TO_OTHER
from pgvector_pipeline.run_requests import MIGRATE_TO_LANGCHAIN_POSTGRES as MIGRATE_TO_LANGCHAIN_POSTGRES
from pgvector_pipeline.run_requests import MIGRATE_TO_PGVECTOR_STORE as MIGRATE_TO_PGVECTOR_STORE
from pgvector_pipeline.run_requests import MIGRATION_TARGETS as MIGRATION_TARGETS
from pgvector_pipeline.run_requests import NO_MIGRATION as NO_MIGRATION
from pgvector_pipeline.run_requests import PLAIN_RESTORE as PLAIN_RESTORE
from pgvector_pipeline.run_requests import SAME_LAYOUT as SAME_LAYOUT
from pgvector_pipeline.run_requests import (
    BackupRequest,
    CopyRequest,
    DrillRequest,
    RestoreRequest,
    RetentionRequest,
    TruncateRequest,
    backup_request,
    restore_request,
)
from pgvector_pipeline.run_requests import Migration as Migration
from pgvector_pipeline.run_requests import RestoreFlags as RestoreFlags

LOCATION_NAME = "pgvector_pipeline"
# The repository name Dagster gives a code location defined with `Definitions`.
REPOSITORY_NAME = "__repository__"

BACKUP_JOB = "vector_backup_job"
REQUEST_BACKUP_JOB = "request_vector_backup_job"
RESTORE_JOB = "vector_restore_job"
TRUNCATE_JOB = "vector_truncate_job"
INVENTORY_JOB = "vector_inventory_job"
RETENTION_JOB = "vector_retention_job"
COPY_JOB = "vector_copy_job"
DRILL_JOB = "vector_restore_drill_job"
CHECK_JOB = "vector_check_job"

BACKUP_OP = "vector_store_backup"
REQUEST_BACKUP_OP = "request_vector_backup"
RESTORE_OP = "restore_vector_backup"
TRUNCATE_OP = "truncate_vector_tables"
RETENTION_OP = "delete_old_backup_sets"
COPY_OP = "copy_backup_set"
DRILL_OP = "vector_restore_drill"
CHECK_OP = "check_deployment"
# vector_copy_job's metadata entry naming the other store's root ('' when the code server has none).
OTHER_STORE_METADATA = "other_store"

BACKUP_SCHEDULE = "daily_vector_backup_schedule"
RETENTION_SCHEDULE = "vector_retention_schedule"
FRESHNESS_SCHEDULE = "vector_backup_freshness_schedule"
DRILL_SCHEDULE = "vector_restore_drill_schedule"
TASK_SENSOR = "task_backup_sensor"
DISCOVERY_SENSOR = "backup_discovery_sensor"
ALERT_SENSOR = "vector_run_failure_alert_sensor"
FRESHNESS_CHECK = "recent_global_backup"

INVENTORY_ASSET = "vector_backup_inventory"
# The files of the tables a run names besides LangChain's two (backup config `tables`).
OTHER_TABLES_ASSET = "vector_tables_backup"

# One dynamic partition per set, keyed 'task/timestamp' (see pgvector_pipeline.partitions).
SET_PARTITIONS = "vector_backup_set"
SET_KEY_SEPARATOR = "/"
# The two dynamic dimensions (task × timestamp) of the layout before: their keys are removed on upgrade.
LEGACY_PARTITIONS = ("vector_backup_task", "vector_backup_timestamp")
PARTITION_TAG = "dagster/partition"
# Dagster's tag on every run of a backfill.
BACKFILL_TAG = "dagster/backfill"
# The set a run backed up into or restored from, as a partition key of the backup assets ("task/timestamp").
BACKUP_SET_TAG = "pgvector_pipeline/backup_set"
# What a backup or restore moved, tagged on its run when it succeeds: rows of every table, and the set's bytes.
ROWS_TAG = "pgvector_pipeline/rows"
BYTES_TAG = "pgvector_pipeline/bytes"


# The label of the JSON metadata entry of an op's output that holds what its run found beyond rows and bytes, as the
# command line prints it (a drill's comparisons): the client adds it to the run's result (RunInfo.as_dict), so a
# command prints the same result over GraphQL as with --direct.
RESULT_METADATA = "result"
# The label of the JSON metadata entry of a failure whose message points to request fields (errors.Field): its parts
# (errors.parts_to_json), from which the command line names those fields as its flags.
MESSAGE_PARTS_METADATA = "message_parts"


def result_tags(rows: int, size: int) -> dict[str, str]:
    """The run tags that say what a backup or restore moved (read back by the client's RunInfo)."""
    return {ROWS_TAG: str(rows), BYTES_TAG: str(size)}


# Runs that touch a database carry this tag; the instance's run queue (deploy/*/dagster.yaml) runs one at a
# time per value. Its value names the environment variable holding the database's DSN.
DATABASE_TAG = "pgvector_pipeline/database"
DEFAULT_DSN_ENV = "PGVECTOR_DSN"


def database_tags(dsn_env: str | None = None) -> dict[str, str]:
    """Run tags of a run on the database whose DSN is in `dsn_env` (default PGVECTOR_DSN)."""
    return {DATABASE_TAG: dsn_env or DEFAULT_DSN_ENV}


def pgvector_resource_config(dsn_env: str | None = None, db_schema: str | None = None) -> dict[str, Any]:
    """Resource config that points a run at another database (named by an environment variable) or schema."""
    config: dict[str, Any] = {}
    if dsn_env:
        config["dsn"] = {"env": dsn_env}
    if db_schema:
        config["db_schema"] = db_schema
    return {"resources": {"pgvector": {"config": config}}} if config else {}


def partition_key(task: str, timestamp: str) -> str:
    """A set's name: the backup assets' partition key, the run tag and what results print ('global/20261124_101500';
    validate both first)."""
    return f"{task}{SET_KEY_SEPARATOR}{timestamp}"


def request_config(op: str, request: Any) -> dict[str, Any]:
    """Run config of the op `op` doing `request` (a request of run_requests)."""
    return {"ops": {op: {"config": as_config(request)}}}


# The job, and its op, that does each request of run_requests: the client launches it with the request as the op's
# config (request_config).
REQUEST_JOBS: dict[type, tuple[str, str]] = {
    BackupRequest: (REQUEST_BACKUP_JOB, REQUEST_BACKUP_OP),
    RestoreRequest: (RESTORE_JOB, RESTORE_OP),
    TruncateRequest: (TRUNCATE_JOB, TRUNCATE_OP),
    CopyRequest: (COPY_JOB, COPY_OP),
    DrillRequest: (DRILL_JOB, DRILL_OP),
    RetentionRequest: (RETENTION_JOB, RETENTION_OP),
}
# The jobs that use a database (the pgvector resource): a launch may name another (dsn_env, db_schema) and tags the
# run with it (database_tags).
DATABASE_JOBS = frozenset({BACKUP_JOB, REQUEST_BACKUP_JOB, RESTORE_JOB, TRUNCATE_JOB, DRILL_JOB})


def job_config(request: Any) -> tuple[str, dict[str, Any]]:
    """The job that does `request` (a request of run_requests), and its run config."""
    job, op = REQUEST_JOBS[type(request)]
    return job, request_config(op, request)


def set_backup_config(request: BackupRequest) -> dict[str, Any]:
    """Run config of vector_backup_job doing `request`: its task is the run's partition's, not in its config."""
    return {"ops": {BACKUP_OP: {"config": as_config(request, leave_out=("task_id",))}}}


# What a restore takes is declared once in run_requests (RestoreRequest and its parts); these names stay here for the
# programs that have imported them from the contract.
RESTORE_FLAG_HELP = help_of(RestoreFlags)
MIGRATION_HELP = help_of(Migration)


# --- the run configs programs have built by keyword: each is the run config of the request its arguments make ---


def backup_run_config(
    truncate_after_backup: bool = False,
    create_task_dir: bool = False,
    compression: str = "",
    compression_level: int | None = None,
    collections: Sequence[str] = (),
    tables: Mapping[str, str] | None = None,
    set_format: str = "",
) -> dict[str, Any]:
    """Run config of vector_backup_job (the set is the run's partition); `collections` empty backs up all; `tables`
    names the tables to back up instead of LangChain's two ('name' or 'schema.name'), each with its row filter
    ('' for every row)."""
    request = backup_request(
        None, truncate_after_backup, create_task_dir, compression, compression_level, collections, tables, set_format
    )
    return set_backup_config(request)


def request_run_config(task_id: str | None = None, *backup_options: Any, **named_options: Any) -> dict[str, Any]:
    """Run config of request_vector_backup_job: task_id None or '' backs up into the global directory; the other
    options are backup_run_config's (truncate_after_backup, create_task_dir, compression, compression_level, ...)."""
    return request_config(REQUEST_BACKUP_OP, backup_request(task_id, *backup_options, **named_options))


def restore_run_config(
    task_id: str | None = None,
    timestamp: str = "",
    *,
    tables: list[str] | None = None,
    flags: RestoreFlags = PLAIN_RESTORE,
    collections: Sequence[str] = (),
    rename: Mapping[str, str] | None = None,
    migration: Migration = NO_MIGRATION,
) -> dict[str, Any]:
    """Run config of vector_restore_job naming the set (task_id None or '' is the global directory); `collections`
    restores only those (with flags.replace_collections, in place of the target's), `rename` under new names,
    `migration` into a newer LangChain layout."""
    request = restore_request(
        task_id, timestamp, tables=tables, flags=flags, collections=collections, rename=rename, migration=migration
    )
    return request_config(RESTORE_OP, request)


def truncate_run_config(tables: list[str] | None = None) -> dict[str, Any]:
    """Run config of vector_truncate_job: langchain_pg_embedding by default, or the tables named."""
    return request_config(TRUNCATE_OP, TruncateRequest(tables=tuple(tables)) if tables else TruncateRequest())


def copy_run_config(task_id: str | None, timestamp: str, direction: str = COPY_TO_OTHER) -> dict[str, Any]:
    """Run config of vector_copy_job: the set (task_id None or '' is the global directory) and which way."""
    request = CopyRequest(task_id=task_id or "", timestamp=timestamp, direction=direction)  # type: ignore[arg-type]
    return request_config(COPY_OP, request)


def drill_run_config(task_id: str | None = None, timestamp: str = "", compare_live: bool = False) -> dict[str, Any]:
    """Run config of vector_restore_drill_job: the set (empty timestamp: the location's newest complete one), and
    whether to compare the live tables with it too (what `verify` asks)."""
    return request_config(DRILL_OP, DrillRequest(task_id or "", timestamp, compare_live))


def retention_run_config(
    keep_newest: int | None = None, max_age_days: float | None = None, dry_run: bool = True
) -> dict[str, Any]:
    """Run config of vector_retention_job: keep the newest N sets per location and/or those younger than D days."""
    return request_config(RETENTION_OP, RetentionRequest(keep_newest, max_age_days, dry_run))
