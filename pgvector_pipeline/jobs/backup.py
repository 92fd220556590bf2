"""vector_backup_job: back up every table into the set named by the run's partition."""

import dagster as dg

from pgvector_pipeline.assets.backup import BACKUP_ASSET_KEYS
from pgvector_pipeline.contract import BACKUP_JOB, database_tags

vector_backup_job = dg.define_asset_job(
    BACKUP_JOB,
    selection=dg.AssetSelection.assets(*BACKUP_ASSET_KEYS),
    tags=database_tags(),
    description="Back up the LangChain tables (or the tables its config names) from one snapshot into the set named "
    "by the partition.",
)
