"""Makes sets that Dagster did not write (old system, copied in) visible and restorable in Dagster."""

import hashlib
import json
import time

import dagster as dg

from pgvector_pipeline.assets.backup import BACKUP_ASSET_KEYS, asset_of
from pgvector_pipeline.assets.metadata import Metadata, collections_metadata, encryption_metadata, set_file_metadata
from pgvector_pipeline.contract import LEGACY_PARTITIONS, SET_PARTITIONS
from pgvector_pipeline.env_numbers import number_from_env, whole_number
from pgvector_pipeline.errors import InvalidParams, PipelineError
from pgvector_pipeline.jobs.inventory import vector_inventory_job
from pgvector_pipeline.partitions import (
    backup_partition_key,
    backup_partitions,
    invalid_partition_keys,
    vanished_partition_keys,
)
from pgvector_pipeline.resources import BackupStoreResource
from pgvector_pipeline.store.backup_set_info import STATUS_COMPLETE, STATUS_LEGACY, BackupSetInfo
from pgvector_pipeline.store.layout import manifest_name
from pgvector_pipeline.tables import DEFAULT_TABLES

# Dagster ends a sensor tick after 60 s: stop starting new work after this long, the next tick goes on.
TICK_BUDGET_S = 30.0
MAX_SETS_ENV = "PGVECTOR_DISCOVERY_MAX_SETS_PER_TICK"
# Sets one tick adopts or registers, and partitions of vanished sets it removes, at most (each adoption hashes whole
# CSVs; each registration records two materializations; each removal is a delete): a root holding thousands of old
# sets is taken in over several ticks.
DEFAULT_MAX_SETS = 200
# The cursor of a tick that left work for the next: never equal to a fingerprint, so the next tick goes on.
_UNFINISHED = "unfinished:"


def discovered_metadata(backup_set: BackupSetInfo, table: str) -> Metadata:
    """Metadata of a set found on disk, for its runless materialization."""
    entry = backup_set.manifest.tables.get(table) if backup_set.manifest else None
    metadata = set_file_metadata(
        location=backup_set.location,
        file_name=backup_set.table_files[table],
        size_bytes=backup_set.sizes[table],
        entry=entry,
        manifest_name=manifest_name(backup_set.timestamp) if backup_set.has_manifest else None,
    )
    index_entry = backup_set.sealed.tables.get(table) if backup_set.sealed else None
    if index_entry is not None:  # an encrypted set: what its clear index says (its manifest is sealed)
        metadata = {"dagster/row_count": index_entry.rows, **metadata, "sha256": index_entry.file_sha256}
        metadata["compression"] = index_entry.codec
    metadata.update(encryption_metadata(backup_set.recipients))
    if table == DEFAULT_TABLES.embedding_table and backup_set.manifest is not None:
        metadata.update(collections_metadata(backup_set.manifest.collections))
    adopted = backup_set.manifest is not None and backup_set.manifest.adopted
    metadata["origin"] = (
        "old system's set, adopted: checksums recorded when found"
        if adopted
        else "found in the backup store (not written by this Dagster instance)"
    )
    return metadata


def max_sets_per_tick() -> int:
    """Sets one tick may adopt or register (read at each tick). Unlike other settings, a value that is not a whole
    number of at least 1 falls back to the default: this sensor must keep registering sets."""
    try:
        return number_from_env(
            MAX_SETS_ENV, DEFAULT_MAX_SETS, whole_number, lambda sets: sets >= 1, "must be a whole number of at least 1"
        )
    except InvalidParams:
        return DEFAULT_MAX_SETS


class _TickBudget:
    """How much more one tick may do: a count of sets and a deadline."""

    def __init__(self, sets: int, seconds: float):
        self.sets = sets
        self._deadline = time.monotonic() + seconds

    def take(self) -> bool:
        """Whether one more set may be handled (and count it)."""
        if self.sets <= 0 or time.monotonic() > self._deadline:
            return False
        self.sets -= 1
        return True


def _adopt_legacy_sets(context: dg.SensorEvaluationContext, sets: list[BackupSetInfo], budget: _TickBudget) -> int:
    """Adopt legacy sets while the budget lasts; how many are left for the next ticks."""
    legacy = [s for s in sets if s.status == STATUS_LEGACY]
    for done, backup_set in enumerate(legacy):
        if not budget.take():
            return len(legacy) - done
        try:
            assert backup_set.store is not None, "listed sets know their store"
            backup_set.manifest = backup_set.store.adopt(backup_set)
            backup_set.has_manifest = True
            context.log.info(f"Adopted old-system set {backup_set.timestamp} in {backup_set.location}.")
        except PipelineError as error:
            context.log.warning(f"Set {backup_set.timestamp} in {backup_set.location} was not adopted: {error.message}")
    return 0


def _register_sets(context: dg.SensorEvaluationContext, sets: list[BackupSetInfo], budget: _TickBudget) -> int:
    """Register complete sets Dagster does not know while the budget lasts; how many are left. A set Dagster
    recorded before whose partition was removed (its store was away: the root moved, and came back) gets its
    partition back, and with it the materializations it had."""
    known = {str(key) for asset in BACKUP_ASSET_KEYS for key in context.instance.get_materialized_partitions(asset)}
    complete = [s for s in sets if s.status == STATUS_COMPLETE]
    unknown = [s for s in complete if str(backup_partition_key(s.task, s.timestamp)) not in known]
    chosen = []
    for backup_set in unknown:
        if not budget.take():
            break
        chosen.append(backup_set)
    # One call for every key the chosen and the known sets need, not one per set.
    unknown_keys = {backup_partition_key(s.task, s.timestamp) for s in unknown}
    known_keys = {backup_partition_key(s.task, s.timestamp) for s in complete} - unknown_keys
    partitions = set(context.instance.get_dynamic_partitions(SET_PARTITIONS))
    returning = sorted(known_keys - partitions)
    missing = sorted(({backup_partition_key(s.task, s.timestamp) for s in chosen} | known_keys) - partitions)
    if missing:
        context.instance.add_dynamic_partitions(SET_PARTITIONS, missing)
    if returning:
        context.log.info(
            f"{len(returning)} sets whose partitions were removed are in the store again: "
            + ", ".join(returning[:20])
            + (f" and {len(returning) - 20} more" if len(returning) > 20 else "")
            + "; their partitions are back, with the materializations they had."
        )
    for backup_set in chosen:
        key = backup_partition_key(backup_set.task, backup_set.timestamp)
        # One event per LangChain table's asset; the other tables share one asset, its first such table's event
        # standing for them.
        firsts: dict[dg.AssetKey, str] = {}
        for table in backup_set.tables:
            firsts.setdefault(asset_of(table), table)
        for asset, table in firsts.items():
            context.instance.report_runless_asset_event(
                dg.AssetMaterialization(asset, partition=str(key), metadata=discovered_metadata(backup_set, table))
            )
    if chosen:
        context.log.info(
            f"Registered {len(chosen)} backup sets found on disk: "
            + ", ".join(str(backup_partition_key(s.task, s.timestamp)) for s in chosen[:20])
            + (f" and {len(chosen) - 20} more" if len(chosen) > 20 else "")
        )
    return len(unknown) - len(chosen)


def _remove_vanished(
    context: dg.SensorEvaluationContext, vanished: list[str], budget: _TickBudget, where: str
) -> tuple[list[str], int]:
    """The partition keys of vanished sets this tick removes while the budget lasts, and how many are left."""
    chosen = []
    for key in vanished:
        if not budget.take():
            break
        chosen.append(key)
    if chosen:
        context.log.info(
            f"Removing {len(chosen)} partitions of {SET_PARTITIONS} whose sets are not in {where}: "
            + ", ".join(chosen[:20])
            + (f" and {len(chosen) - 20} more" if len(chosen) > 20 else "")
            + " (deleted outside the tool, or the root moved). Their materializations stay in the event log; a "
            "partition comes back if its set does."
        )
    return chosen, len(vanished) - len(chosen)


@dg.sensor(
    jobs=[vector_inventory_job],
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Adopts old-system sets (records their checksums in a manifest), registers complete sets unknown to "
        "Dagster (one partition per set), removes partition keys that are not a task/timestamp and those whose sets "
        "are gone from the store, refreshes the inventory."
    ),
)
def backup_discovery_sensor(
    context: dg.SensorEvaluationContext, backup_store: BackupStoreResource
) -> dg.SensorResult | dg.SkipReason:
    """Adopt old-system sets, register sets Dagster does not know, drop invalid partition keys and those of sets
    that are gone, refresh the inventory."""
    invalid = invalid_partition_keys(context.instance)
    if invalid:
        context.log.warning(
            f"Removing {len(invalid)} invalid keys from {SET_PARTITIONS}: "
            + ", ".join(repr(k)[:40] for k in invalid[:10])
        )
    # An instance of the layout before (task × timestamp dimensions): drop those keys; every set is registered
    # under its own key below, since none of them has a materialization under it yet.
    deletions = []
    for name in LEGACY_PARTITIONS:
        old_keys = context.instance.get_dynamic_partitions(name)
        if old_keys:
            deletions.append(dg.DynamicPartitionsDefinition(name=name).build_delete_request(old_keys))
            context.log.info(f"Moving to one partition per set: removing {len(old_keys)} keys of {name}.")
    store = backup_store.store()
    sets = store.list_sets()
    # Read after the listing: a set claimed since is kept by its run, or its time, not by the listing.
    vanished = vanished_partition_keys(context.instance, sets, backup_store.timestamp_window_s)
    # The cursor is a fingerprint of what is on disk: an unchanged store costs one directory scan.
    fingerprint = _fingerprint(sets)
    if fingerprint == context.cursor and not (invalid or deletions or vanished):
        return dg.SkipReason("No backup set appeared, changed or disappeared since the last tick.")
    limit = max_sets_per_tick()
    budget = _TickBudget(limit, TICK_BUDGET_S)
    removed, left = _remove_vanished(context, vanished, budget, store.where)
    left += _adopt_legacy_sets(context, sets, budget)
    left += _register_sets(context, sets, budget)
    if invalid or removed:
        deletions.insert(0, backup_partitions.build_delete_request(invalid + removed))
    fingerprint = _fingerprint(sets)
    if left:
        context.log.info(
            f"{left} sets or partitions wait for the next ticks: at most {limit} ({MAX_SETS_ENV}) and "
            f"{TICK_BUDGET_S:g} s of work per tick."
        )
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"inventory-{fingerprint}", job_name=vector_inventory_job.name)],
        cursor=f"{_UNFINISHED}{fingerprint}" if left else fingerprint,
        dynamic_partitions_requests=deletions,
    )


def _fingerprint(sets: list[BackupSetInfo]) -> str:
    return hashlib.sha256(
        json.dumps([(s.task, s.timestamp, s.status, s.total_bytes) for s in sets]).encode()
    ).hexdigest()
