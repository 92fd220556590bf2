import dagster as dg

from pgvector_pipeline.assets.backup import vector_store_backup
from pgvector_pipeline.assets.inventory import inventory_job, vector_backup_inventory
from pgvector_pipeline.jobs.backup import backup_job, request_backup_job
from pgvector_pipeline.jobs.maintenance import restore_job, truncate_job
from pgvector_pipeline.resources import BackupStoreResource, PgVectorResource
from pgvector_pipeline.resources.backup_store import default_backup_root
from pgvector_pipeline.sensors.discovery import backup_discovery_sensor

defs = dg.Definitions(
    assets=[vector_store_backup, vector_backup_inventory],
    jobs=[backup_job, request_backup_job, restore_job, truncate_job, inventory_job],
    sensors=[backup_discovery_sensor],
    resources={
        "pgvector": PgVectorResource(dsn=dg.EnvVar("PGVECTOR_DSN")),
        "backup_store": BackupStoreResource(root=default_backup_root()),
    },
)
