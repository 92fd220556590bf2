"""daily_vector_backup_schedule: a global backup on a cron schedule (off until switched on)."""

import dagster as dg

from pgvector_pipeline.contract import BACKUP_SCHEDULE, request_run_config
from pgvector_pipeline.jobs.request_backup import request_vector_backup_job
from pgvector_pipeline.schedules.from_env import DEFAULT_TIMEZONE, TIMEZONE_ENV, schedule_from_env

CRON_ENV = "PGVECTOR_BACKUP_CRON"
DEFAULT_CRON = "0 2 * * *"


def build_daily_vector_backup_schedule() -> dg.ScheduleDefinition:
    """The schedule, with its cron and time zone from the environment (read when the code location loads:
    a schedule's cron is part of its definition)."""
    return schedule_from_env(
        CRON_ENV,
        DEFAULT_CRON,
        name=BACKUP_SCHEDULE,
        job=request_vector_backup_job,
        run_config=request_run_config(),
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=(
            f"Back up both tables into {{root}}/vector_bak/ ({CRON_ENV}, default '{DEFAULT_CRON}', in "
            f"{TIMEZONE_ENV}, default {DEFAULT_TIMEZONE}). Each run claims its own set. Off until switched on: "
            f"it writes into the backup root, which should be configured first."
        ),
    )
