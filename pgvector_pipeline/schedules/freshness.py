"""vector_backup_freshness_schedule: refresh the inventory hourly, which runs recent_global_backup."""

import dagster as dg

from pgvector_pipeline.contract import FRESHNESS_SCHEDULE
from pgvector_pipeline.jobs.inventory import vector_inventory_job
from pgvector_pipeline.schedules.from_env import schedule_from_env

CRON_ENV = "PGVECTOR_FRESHNESS_CRON"
DEFAULT_CRON = "0 * * * *"


def build_vector_backup_freshness_schedule() -> dg.ScheduleDefinition:
    """The schedule, with its cron from the environment (hourly by default)."""
    return schedule_from_env(
        CRON_ENV,
        DEFAULT_CRON,
        name=FRESHNESS_SCHEDULE,
        job=vector_inventory_job,
        # On from the start: it only reads the backup root, and a stopped backup schedule is what it should catch.
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Refresh vector_backup_inventory and run its check recent_global_backup ({CRON_ENV}, default hourly).",
    )
