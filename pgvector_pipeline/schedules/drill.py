"""vector_restore_drill_schedule: a restore drill of the newest complete global set on a cron schedule (off until
switched on: it writes a scratch copy of the tables into the database for the length of the drill)."""

import dagster as dg

from pgvector_pipeline.contract import DRILL_SCHEDULE, drill_run_config
from pgvector_pipeline.jobs.drill import vector_restore_drill_job
from pgvector_pipeline.schedules.from_env import schedule_from_env

CRON_ENV = "PGVECTOR_DRILL_CRON"
DEFAULT_CRON = "0 5 * * 0"  # Sundays 05:00


def build_vector_restore_drill_schedule() -> dg.ScheduleDefinition:
    """The schedule, with its cron from the environment."""
    return schedule_from_env(
        CRON_ENV,
        DEFAULT_CRON,
        name=DRILL_SCHEDULE,
        job=vector_restore_drill_job,
        execution_fn=lambda context: dg.RunRequest(run_config=drill_run_config()),
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=(
            f"Restore drill of the newest complete global set ({CRON_ENV}, default '{DEFAULT_CRON}'). Off until "
            f"switched on: it needs room for a scratch copy of the tables in the database while it runs."
        ),
    )
