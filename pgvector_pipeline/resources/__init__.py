from pgvector_pipeline.resources.backup_store import BackupStoreResource
from pgvector_pipeline.resources.pgvector import PgVectorResource

__all__ = ["BackupStoreResource", "PgVectorResource"]
