"""The code location: every asset, check, job, schedule, sensor and resource, with names as the UI shows them."""

import warnings

import dagster as dg
from pydantic import PydanticDeprecatedSince20

from pgvector_pipeline.assets.backup import vector_store_backup
from pgvector_pipeline.assets.freshness import recent_global_backup
from pgvector_pipeline.assets.inventory import vector_backup_inventory
from pgvector_pipeline.contract import DEFAULT_DSN_ENV
from pgvector_pipeline.jobs.backup import vector_backup_job
from pgvector_pipeline.jobs.check import vector_check_job
from pgvector_pipeline.jobs.copy import build_vector_copy_job
from pgvector_pipeline.jobs.drill import vector_restore_drill_job
from pgvector_pipeline.jobs.inventory import vector_inventory_job
from pgvector_pipeline.jobs.request_backup import request_vector_backup_job
from pgvector_pipeline.jobs.restore import vector_restore_job
from pgvector_pipeline.jobs.retention import vector_retention_job
from pgvector_pipeline.jobs.truncate import vector_truncate_job
from pgvector_pipeline.resources import BackupStoreResource, OtherBackupStoreResource, PgVectorResource
from pgvector_pipeline.schedules.backup import build_daily_vector_backup_schedule
from pgvector_pipeline.schedules.drill import build_vector_restore_drill_schedule
from pgvector_pipeline.schedules.freshness import build_vector_backup_freshness_schedule
from pgvector_pipeline.schedules.retention import build_vector_retention_schedule
from pgvector_pipeline.sensors.alerts import vector_run_failure_alert_sensor
from pgvector_pipeline.sensors.discovery import backup_discovery_sensor
from pgvector_pipeline.sensors.task_backup import task_backup_sensor

# Dagster 1.13 copies every sensor that targets a job when it binds resources (SensorDefinition.with_attributes) and
# passes `owners=None` along, which its beta-parameter check reports at every load of the code location although no
# sensor here sets owners. Nothing a user can act on: silenced for that one message only.
warnings.filterwarnings(
    "ignore", message=r"Parameter `owners` of initializer `SensorDefinition.__init__`", category=dg.BetaWarning
)
# The backup stores have no run config at all (everything about them is the deployment's): for a resource without
# fields, Dagster 1.13's pydantic layer falls back to the deprecated `__fields__` whenever it builds one, and pydantic
# reports that. Nothing a user can act on either: silenced for that one message only.
warnings.filterwarnings(
    "ignore", message=r"The `__fields__` attribute is deprecated", category=PydanticDeprecatedSince20
)

defs = dg.Definitions(
    assets=[vector_store_backup, vector_backup_inventory],
    asset_checks=[recent_global_backup],
    # Every job is one op (or one asset step): a subprocess per step would cost seconds for nothing.
    executor=dg.in_process_executor,
    jobs=[
        vector_backup_job,
        request_vector_backup_job,
        vector_restore_job,
        vector_truncate_job,
        vector_inventory_job,
        vector_retention_job,
        build_vector_copy_job(),
        vector_restore_drill_job,
        vector_check_job,
    ],
    # Cron expressions are part of a schedule's definition, so they are read from the environment here.
    schedules=[
        build_daily_vector_backup_schedule(),
        build_vector_retention_schedule(),
        build_vector_backup_freshness_schedule(),
        build_vector_restore_drill_schedule(),
    ],
    sensors=[backup_discovery_sensor, task_backup_sensor, vector_run_failure_alert_sensor],
    # Run config holds only what a launcher chooses per run (the DSN's variable, the schema); everything a deployment
    # decides is read from the environment (pgvector_pipeline.settings), so the Launchpad neither shows nor takes it.
    resources={
        "pgvector": PgVectorResource(dsn=dg.EnvVar(DEFAULT_DSN_ENV)),
        # The root is resolved when a run needs it (PGVECTOR_BACKUP_ROOT, else ./vector_backups), not at import.
        "backup_store": BackupStoreResource(),
        # Where vector_copy_job copies sets to or from (PGVECTOR_OTHER_BACKUP_ROOT): S3 beside a local store, or
        # the other way round.
        "other_backup_store": OtherBackupStoreResource(),
    },
)
