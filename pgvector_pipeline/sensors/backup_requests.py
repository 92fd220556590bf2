"""Launches a backup run for every successful request_vector_backup_job run."""

from datetime import datetime, timezone

import dagster as dg

from pgvector_pipeline.jobs.backup import (
    REQUEST_JOB_NAME,
    REQUESTED_CREATE_DIR_TAG,
    REQUESTED_TASK_TAG,
    REQUESTED_TIMESTAMP_TAG,
    REQUESTED_TRUNCATE_TAG,
    backup_job,
    backup_run_config,
)
from pgvector_pipeline.partitions import backup_partition_key

REQUESTED_BY_TAG = "pgvector_pipeline/requested_by_run"


@dg.sensor(
    job=backup_job,
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=f"Turns each successful {REQUEST_JOB_NAME} run into a backup run of the partition it registered.",
)
def backup_request_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    # The cursor is the update time of the newest request handled; run keys make a repeat harmless.
    since = float(context.cursor) if context.cursor else 0.0
    records = context.instance.get_run_records(
        filters=dg.RunsFilter(
            job_name=REQUEST_JOB_NAME,
            statuses=[dg.DagsterRunStatus.SUCCESS],
            updated_after=datetime.fromtimestamp(since, tz=timezone.utc),
        ),
        order_by="update_timestamp",
        ascending=True,
        limit=100,
    )
    run_requests = []
    for record in records:
        since = max(since, record.update_timestamp.timestamp())
        tags = record.dagster_run.tags
        if REQUESTED_TIMESTAMP_TAG not in tags:
            continue
        run_requests.append(
            dg.RunRequest(
                run_key=record.dagster_run.run_id,
                partition_key=backup_partition_key(tags[REQUESTED_TASK_TAG], tags[REQUESTED_TIMESTAMP_TAG]),
                run_config=backup_run_config(
                    truncate_after_backup=tags.get(REQUESTED_TRUNCATE_TAG) == "true",
                    create_task_dir=tags.get(REQUESTED_CREATE_DIR_TAG) == "true",
                ),
                tags={REQUESTED_BY_TAG: record.dagster_run.run_id},
            )
        )
    return dg.SensorResult(run_requests=run_requests, cursor=str(since))
