"""Makes sets that Dagster did not write (old system, copied in) visible and restorable in Dagster."""

import hashlib
import json
import time

import dagster as dg

from pgvector_pipeline.assets.backup import ASSET_BY_TABLE, EMBEDDING_BACKUP
from pgvector_pipeline.assets.metadata import set_file_metadata
from pgvector_pipeline.errors import PipelineError
from pgvector_pipeline.jobs.inventory import vector_inventory_job
from pgvector_pipeline.partitions import (
    backup_partition_key,
    invalid_partition_keys,
    register_backup_partition,
    task_partitions,
    timestamp_partitions,
)
from pgvector_pipeline.resources import BackupStoreResource
from pgvector_pipeline.store.adopt import adopt_legacy_set
from pgvector_pipeline.store.listing import (
    STATUS_COMPLETE,
    STATUS_LEGACY,
    BackupSetInfo,
    list_backup_sets,
)

# Adopting hashes whole CSVs: stop starting new adoptions after this long, the next tick goes on.
ADOPTION_BUDGET_S = 20.0


def discovered_metadata(backup_set: BackupSetInfo, table: str) -> dict:
    """Metadata of a set found on disk, for its runless materialization."""
    entry = backup_set.manifest.tables.get(table) if backup_set.manifest else None
    metadata = set_file_metadata(
        path=backup_set.files[table],
        rows=entry.rows if entry else None,
        size_bytes=backup_set.sizes[table],
        sha256=entry.sha256 if entry else None,
        columns=[(c.name, c.type) for c in entry.columns] if entry else None,
        manifest_path=backup_set.manifest_path if backup_set.manifest else None,
    )
    adopted = backup_set.manifest is not None and backup_set.manifest.adopted
    metadata["origin"] = (
        "old system's set, adopted: checksums recorded when found"
        if adopted
        else "found on disk (not written by this Dagster instance)"
    )
    return metadata


def _adopt_legacy_sets(context: dg.SensorEvaluationContext, sets: list[BackupSetInfo], mode: int) -> None:
    deadline = time.monotonic() + ADOPTION_BUDGET_S
    for backup_set in (s for s in sets if s.status == STATUS_LEGACY):
        if time.monotonic() > deadline:
            context.log.info("Adoption time budget used up; the remaining old-system sets are adopted next tick.")
            return
        try:
            backup_set.manifest = adopt_legacy_set(backup_set, mode)
            backup_set.has_manifest = True
            context.log.info(f"Adopted old-system set {backup_set.timestamp} in {backup_set.directory}.")
        except PipelineError as error:
            context.log.warning(
                f"Set {backup_set.timestamp} in {backup_set.directory} was not adopted: {error.message}"
            )


@dg.sensor(
    jobs=[vector_inventory_job],
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Adopts old-system sets (records their checksums in a manifest), registers complete sets unknown to "
        "Dagster, removes partition keys that are not valid task ids or timestamps, refreshes the inventory."
    ),
)
def backup_discovery_sensor(context: dg.SensorEvaluationContext, backup_store: BackupStoreResource):
    """Adopt old-system sets, register sets Dagster does not know, drop invalid partition keys, refresh the inventory."""
    invalid = invalid_partition_keys(context.instance)
    deletions = [
        definition.build_delete_request(invalid[definition.name])
        for definition in (task_partitions, timestamp_partitions)
        if definition.name in invalid
    ]
    for name, keys in invalid.items():
        context.log.warning(
            f"Removing {len(keys)} invalid keys from {name}: {', '.join(repr(k)[:40] for k in keys[:10])}"
        )
    sets = list_backup_sets(backup_store.root_path)
    # The cursor is a fingerprint of what is on disk: an unchanged store costs one directory scan.
    fingerprint = _fingerprint(sets)
    if fingerprint == context.cursor and not deletions:
        return dg.SkipReason("No backup set appeared, changed or disappeared since the last tick.")
    _adopt_legacy_sets(context, sets, backup_store.mode)

    known = {str(key) for key in context.instance.get_materialized_partitions(EMBEDDING_BACKUP)}
    registered = []
    for backup_set in (s for s in sets if s.status == STATUS_COMPLETE):
        key = backup_partition_key(backup_set.task, backup_set.timestamp)
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
    fingerprint = _fingerprint(sets)
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"inventory-{fingerprint}", job_name=vector_inventory_job.name)],
        cursor=fingerprint,
        dynamic_partitions_requests=deletions,
    )


def _fingerprint(sets: list[BackupSetInfo]) -> str:
    return hashlib.sha256(
        json.dumps([(s.task, s.timestamp, s.status, s.total_bytes) for s in sets]).encode()
    ).hexdigest()
