"""vector_backup_job: back up every table into the set named by the run's partition."""

import dagster as dg

from pgvector_pipeline.assets.backup import ASSET_BY_TABLE
from pgvector_pipeline.contract import BACKUP_JOB, database_tags
from pgvector_pipeline.partitions import backup_partitions

vector_backup_job = dg.define_asset_job(
    BACKUP_JOB,
    selection=dg.AssetSelection.assets(*ASSET_BY_TABLE.values()),
    partitions_def=backup_partitions,
    tags=database_tags(),
    description="Back up the LangChain tables from one snapshot into the set named by the partition.",
)
