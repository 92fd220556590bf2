"""The code location: every asset, job, sensor and resource, with names as the UI shows them."""

import dagster as dg

from pgvector_pipeline.assets.backup import vector_store_backup
from pgvector_pipeline.assets.inventory import vector_backup_inventory
from pgvector_pipeline.jobs.backup import vector_backup_job
from pgvector_pipeline.jobs.inventory import vector_inventory_job
from pgvector_pipeline.jobs.request_backup import request_vector_backup_job
from pgvector_pipeline.jobs.restore import vector_restore_job
from pgvector_pipeline.jobs.truncate import vector_truncate_job
from pgvector_pipeline.resources import BackupStoreResource, PgVectorResource
from pgvector_pipeline.sensors.discovery import backup_discovery_sensor

defs = dg.Definitions(
    assets=[vector_store_backup, vector_backup_inventory],
    jobs=[vector_backup_job, request_vector_backup_job, vector_restore_job, vector_truncate_job, vector_inventory_job],
    sensors=[backup_discovery_sensor],
    resources={
        "pgvector": PgVectorResource(dsn=dg.EnvVar("PGVECTOR_DSN")),
        # The root is resolved when a run needs it (PGVECTOR_BACKUP_ROOT, else ./vector_backups), not at import.
        "backup_store": BackupStoreResource(),
    },
)
