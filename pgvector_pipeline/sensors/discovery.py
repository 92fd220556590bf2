"""Makes sets that Dagster did not write (old system, copied in) visible and restorable in Dagster."""

import hashlib
import json

import dagster as dg

from pgvector_pipeline.assets.backup import ASSET_BY_TABLE, EMBEDDING_BACKUP
from pgvector_pipeline.assets.inventory import inventory_job
from pgvector_pipeline.assets.metadata import set_file_metadata
from pgvector_pipeline.errors import InvalidParams
from pgvector_pipeline.partitions import backup_partition_key, register_backup_partition
from pgvector_pipeline.resources import BackupStoreResource
from pgvector_pipeline.store.listing import BackupSetInfo, list_backup_sets


def discovered_metadata(backup_set: BackupSetInfo, table: str) -> dict:
    entry = backup_set.manifest["tables"][table] if backup_set.manifest else {}
    metadata = set_file_metadata(
        path=backup_set.files[table],
        rows=entry.get("rows"),
        size_bytes=backup_set.sizes[table],
        sha256=entry.get("sha256"),
        columns=[(c["name"], c["type"]) for c in entry.get("columns", [])],
        manifest_path=backup_set.manifest_path if backup_set.manifest else None,
    )
    metadata["origin"] = "found on disk (not written by this Dagster instance)"
    return metadata


@dg.sensor(
    jobs=[inventory_job],
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Registers complete backup sets found on disk but unknown to Dagster, and refreshes the inventory.",
)
def backup_discovery_sensor(context: dg.SensorEvaluationContext, backup_store: BackupStoreResource):
    sets = list_backup_sets(backup_store.root_path)
    # The cursor is a fingerprint of what is on disk: an unchanged store costs one directory scan.
    fingerprint = hashlib.sha256(
        json.dumps([(s.task, s.timestamp, s.complete, s.total_bytes) for s in sets]).encode()
    ).hexdigest()
    if fingerprint == context.cursor:
        return dg.SkipReason("No backup set appeared, changed or disappeared since the last tick.")

    known = {str(key) for key in context.instance.get_materialized_partitions(EMBEDDING_BACKUP)}
    registered = []
    for backup_set in (s for s in sets if s.complete):
        try:
            key = backup_partition_key(backup_set.task, backup_set.timestamp)
        except InvalidParams as error:
            context.log.warning(f"Skipping {backup_set.directory} set {backup_set.timestamp}: {error.message}")
            continue
        if str(key) in known:
            continue
        register_backup_partition(context.instance, backup_set.task, backup_set.timestamp)
        for table, asset_key in ASSET_BY_TABLE.items():
            context.instance.report_runless_asset_event(
                dg.AssetMaterialization(asset_key, partition=str(key), metadata=discovered_metadata(backup_set, table))
            )
        registered.append(str(key))
    if registered:
        context.log.info(f"Registered {len(registered)} backup sets found on disk: {', '.join(registered)}")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"inventory-{fingerprint}", job_name=inventory_job.name)],
        cursor=fingerprint,
    )
