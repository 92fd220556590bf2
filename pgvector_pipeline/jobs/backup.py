"""vector_backup_job: back up both tables into the set named by the run's partition."""

import dagster as dg

from pgvector_pipeline.assets.backup import COLLECTION_BACKUP, EMBEDDING_BACKUP
from pgvector_pipeline.contract import BACKUP_JOB, database_tags
from pgvector_pipeline.partitions import backup_partitions

vector_backup_job = dg.define_asset_job(
    BACKUP_JOB,
    selection=dg.AssetSelection.assets(COLLECTION_BACKUP, EMBEDDING_BACKUP),
    partitions_def=backup_partitions,
    tags=database_tags(),
    description="Back up both LangChain tables from one snapshot into the set named by the partition.",
)
