"""vector_backup_freshness_schedule: refresh the inventory hourly, which runs recent_global_backup."""

import dagster as dg

from pgvector_pipeline.contract import FRESHNESS_SCHEDULE
from pgvector_pipeline.jobs.inventory import vector_inventory_job

vector_backup_freshness_schedule = dg.ScheduleDefinition(
    name=FRESHNESS_SCHEDULE,
    job=vector_inventory_job,
    cron_schedule="0 * * * *",
    # On from the start: it only reads the backup root, and a stopped backup schedule is what it should catch.
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Hourly: refresh vector_backup_inventory and run its check recent_global_backup.",
)
