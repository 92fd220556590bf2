"""Backup sets as partitions: one dynamic partition per set that exists, keyed `task/timestamp` (e.g.
`task_7/20261124_101500`, `global/20261124_101500`), so that the partition grid, the Launchpad's picker and
"Missing" mean the real sets and nothing else.

Instances from before this layout had two dynamic dimensions (task × timestamp, whose every combination showed as a
partition); backup_discovery_sensor removes their keys and registers every set under its own key on its next tick.
"""

from collections.abc import Sequence
from datetime import datetime

import dagster as dg

from pgvector_pipeline.contract import BACKUP_SET_TAG, PARTITION_TAG, SET_PARTITIONS, partition_key
from pgvector_pipeline.errors import InvalidParams
from pgvector_pipeline.store.backup_set_info import BackupSetInfo
from pgvector_pipeline.store.layout import task_key, timestamp_time, validate_task_id, validate_timestamp

backup_partitions = dg.DynamicPartitionsDefinition(name=SET_PARTITIONS)
# Runs of the old layout carry 'task|timestamp' keys in their tags: still read.
_LEGACY_SEPARATOR = "|"
# Runs that may still write their set: every status but the three a run ends in.
_UNFINISHED_RUN_STATUSES = [
    status
    for status in dg.DagsterRunStatus
    if status not in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
]
# Clocks of the code server, the run workers and the daemon may disagree this much.
_CLOCK_SLACK_S = 60


def backup_partition_key(task: str | None, timestamp: str) -> str:
    """The partition of a set; task None, '' or 'global' is the global directory."""
    return partition_key(task_key(task), validate_timestamp(timestamp))


def backup_set_of(key: str) -> tuple[str, str]:
    """(task, timestamp) of a partition key, both validated; InvalidParams for anything else.

    Runs launched by tag can carry any string (GraphQL accepts every key), so the key is parsed here rather than
    trusted; an old layout's 'task|timestamp' is read too.
    """
    text = str(key)
    task, separator, timestamp = text.replace(_LEGACY_SEPARATOR, "/", 1).partition("/")
    if not separator:
        raise InvalidParams(f"Partition key {text!r:.80} is not 'task_id/timestamp' (e.g. 'global/20261123_121700').")
    return validate_task_id(task), validate_timestamp(timestamp)


def invalid_partition_keys(instance: dg.DagsterInstance) -> list[str]:
    """Set partition keys that are not 'task/timestamp' (added by hand or over GraphQL)."""
    invalid = []
    for key in instance.get_dynamic_partitions(SET_PARTITIONS):
        try:
            backup_set_of(key)
        except InvalidParams:
            invalid.append(key)
    return invalid


def register_backup_partition(instance: dg.DagsterInstance, task: str, timestamp: str) -> str:
    """Add the set's partition key (a no-op when it exists) and return it."""
    key = backup_partition_key(task, timestamp)
    if not instance.has_dynamic_partition(SET_PARTITIONS, key):
        instance.add_dynamic_partitions(SET_PARTITIONS, [key])
    return key


def remove_unused_partition_keys(
    instance: dg.DagsterInstance, deleted: Sequence[BackupSetInfo], remaining: Sequence[BackupSetInfo]
) -> list[str]:
    """Delete the partition keys of deleted sets that no set left in the store has; the keys removed. Listed sets'
    keys are only compared, not validated: a set named with no real time (damaged) has no partition, and must not
    fail the run that deleted it."""
    in_use = {partition_key(s.task, s.timestamp) for s in remaining}
    removed = []
    for key in sorted({partition_key(s.task, s.timestamp) for s in deleted} - in_use):
        if instance.has_dynamic_partition(SET_PARTITIONS, key):
            instance.delete_dynamic_partition(SET_PARTITIONS, key)
            removed.append(key)
    return removed


def _partition_key_or_none(backup_set: BackupSetInfo) -> str | None:
    """The set's partition key; None for a set named with no real time (it lists as damaged and has no partition)."""
    try:
        return backup_partition_key(backup_set.task, backup_set.timestamp)
    except InvalidParams:
        return None


def vanished_partition_keys(
    instance: dg.DagsterInstance, sets: Sequence[BackupSetInfo], window_s: float, now: datetime | None = None
) -> list[str]:
    """The set partition keys whose set is not in `sets` (the store's listing, any status) and that nothing may still
    write: not stamped within `window_s` of now (a partition registered for a backup run about to start: a backup run
    writes only a set of its start's time, see store.layout.check_stamped_now), and named by no run that has not
    finished (its partition, or the set a request run claimed). Invalid keys are not among them (see
    invalid_partition_keys)."""
    listed = {_partition_key_or_none(s) for s in sets}
    now = now or datetime.now()
    candidates = []
    for key in instance.get_dynamic_partitions(SET_PARTITIONS):
        try:
            task, timestamp = backup_set_of(key)
        except InvalidParams:
            continue
        if backup_partition_key(task, timestamp) in listed:
            continue
        if abs((timestamp_time(timestamp) - now).total_seconds()) <= window_s + _CLOCK_SLACK_S:
            continue
        candidates.append(key)
    if not candidates:
        return []
    named = _keys_named_by_unfinished_runs(instance)
    return sorted(key for key in candidates if key not in named)


def _keys_named_by_unfinished_runs(instance: dg.DagsterInstance) -> set[str]:
    runs = instance.get_runs(filters=dg.RunsFilter(statuses=_UNFINISHED_RUN_STATUSES))
    return {run.tags[tag] for run in runs for tag in (PARTITION_TAG, BACKUP_SET_TAG) if tag in run.tags}
