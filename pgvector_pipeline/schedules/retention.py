"""vector_retention_schedule: apply the retention policy on a cron schedule (off until switched on)."""

import os

import dagster as dg

from pgvector_pipeline.contract import RETENTION_SCHEDULE, retention_run_config
from pgvector_pipeline.jobs.retention import vector_retention_job
from pgvector_pipeline.schedules.from_env import schedule_from_env

CRON_ENV = "PGVECTOR_RETENTION_CRON"
DEFAULT_CRON = "30 3 * * *"
KEEP_NEWEST_ENV = "PGVECTOR_RETENTION_KEEP_NEWEST"
MAX_AGE_DAYS_ENV = "PGVECTOR_RETENTION_MAX_AGE_DAYS"


def retention_tick(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    """The policy is read from the environment at each tick, so changing it needs no reload."""
    keep_newest, max_age_days = os.environ.get(KEEP_NEWEST_ENV), os.environ.get(MAX_AGE_DAYS_ENV)
    if not keep_newest and not max_age_days:
        return dg.SkipReason(
            f"No retention policy: set {KEEP_NEWEST_ENV} (sets to keep per location) and/or {MAX_AGE_DAYS_ENV}."
        )
    try:
        config = retention_run_config(
            int(keep_newest) if keep_newest else None, float(max_age_days) if max_age_days else None, dry_run=False
        )
    except ValueError:
        return dg.SkipReason(
            f"{KEEP_NEWEST_ENV}={keep_newest!r:.20} / {MAX_AGE_DAYS_ENV}={max_age_days!r:.20}: use a whole number "
            f"of sets and a number of days."
        )
    return dg.RunRequest(run_config=config)


def build_vector_retention_schedule() -> dg.ScheduleDefinition:
    """The schedule, with its cron from the environment (the policy is read at each tick)."""
    return schedule_from_env(
        CRON_ENV,
        DEFAULT_CRON,
        name=RETENTION_SCHEDULE,
        job=vector_retention_job,
        execution_fn=retention_tick,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=(
            f"Delete old sets by the policy in {KEEP_NEWEST_ENV} and/or {MAX_AGE_DAYS_ENV} ({CRON_ENV}, default "
            f"'{DEFAULT_CRON}'). Off until switched on: it deletes backups."
        ),
    )
