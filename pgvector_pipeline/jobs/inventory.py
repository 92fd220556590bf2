"""vector_inventory_job: refresh vector_backup_inventory (every set on disk)."""

import dagster as dg

from pgvector_pipeline.assets.inventory import INVENTORY
from pgvector_pipeline.contract import INVENTORY_JOB

vector_inventory_job = dg.define_asset_job(
    INVENTORY_JOB, selection=[INVENTORY], description="Refresh vector_backup_inventory."
)
