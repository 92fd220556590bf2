import dagster as dg

from pgvector_pipeline.assets.backup import vector_store_backup
from pgvector_pipeline.jobs.backup import backup_job, request_backup_job
from pgvector_pipeline.resources import BackupStoreResource, PgVectorResource
from pgvector_pipeline.resources.backup_store import default_backup_root
from pgvector_pipeline.sensors.backup_requests import backup_request_sensor

defs = dg.Definitions(
    assets=[vector_store_backup],
    jobs=[backup_job, request_backup_job],
    sensors=[backup_request_sensor],
    resources={
        "pgvector": PgVectorResource(dsn=dg.EnvVar("PGVECTOR_DSN")),
        "backup_store": BackupStoreResource(root=default_backup_root()),
    },
)
