"""daily_vector_backup_schedule: a global backup on a cron schedule (off until switched on)."""

import os
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dagster as dg

from pgvector_pipeline.contract import BACKUP_SCHEDULE, request_run_config
from pgvector_pipeline.jobs.request_backup import request_vector_backup_job

CRON_ENV = "PGVECTOR_BACKUP_CRON"
TIMEZONE_ENV = "PGVECTOR_BACKUP_TIMEZONE"
DEFAULT_CRON = "0 2 * * *"
DEFAULT_TIMEZONE = "UTC"


def schedule_timezone(env_name: str, default: str) -> str:
    """An IANA time zone from the environment; a clear error when it is not one."""
    name = os.environ.get(env_name) or default
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{env_name}={name!r:.60} is not an IANA time zone such as 'UTC' or 'Europe/Berlin'."
        ) from None
    return name


def cron_from_env(env_name: str, default: str) -> str:
    """A cron expression from the environment (checked where the schedule is built)."""
    return os.environ.get(env_name) or default


def env_schedule(env_name: str, **schedule_args) -> dg.ScheduleDefinition:
    """A schedule whose cron came from `env_name`; an error naming the variable when Dagster refuses it."""
    try:
        return dg.ScheduleDefinition(**schedule_args)
    except dg.DagsterInvalidDefinitionError as error:
        raise ValueError(f"{env_name}: {error}") from None


def build_daily_vector_backup_schedule() -> dg.ScheduleDefinition:
    """The schedule, with its cron and time zone from the environment (read when the code location loads:
    a schedule's cron is part of its definition)."""
    return env_schedule(
        CRON_ENV,
        name=BACKUP_SCHEDULE,
        job=request_vector_backup_job,
        cron_schedule=cron_from_env(CRON_ENV, DEFAULT_CRON),
        execution_timezone=schedule_timezone(TIMEZONE_ENV, DEFAULT_TIMEZONE),
        run_config=request_run_config(),
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=(
            f"Back up both tables into {{root}}/vector_bak/ ({CRON_ENV}, default '{DEFAULT_CRON}', in "
            f"{TIMEZONE_ENV}, default {DEFAULT_TIMEZONE}). Each run claims its own set. Off until switched on: "
            f"it writes into the backup root, which should be configured first."
        ),
    )
