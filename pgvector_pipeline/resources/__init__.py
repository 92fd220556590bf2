from pgvector_pipeline.resources.backup_store import BackupStoreResource, OtherBackupStoreResource
from pgvector_pipeline.resources.pgvector import PgVectorResource

__all__ = ["BackupStoreResource", "OtherBackupStoreResource", "PgVectorResource"]
