"""Backup sets as partitions: task id x timestamp, both dynamic."""

from collections.abc import Sequence

import dagster as dg

from pgvector_pipeline.contract import (
    MULTI_KEY_SEPARATOR,
    TASK_DIMENSION,
    TASK_PARTITIONS,
    TIMESTAMP_DIMENSION,
    TIMESTAMP_PARTITIONS,
)
from pgvector_pipeline.errors import InvalidParams
from pgvector_pipeline.store.layout import (
    task_key,
    validate_task_id,
    validate_timestamp,
)
from pgvector_pipeline.store.listing import BackupSetInfo

task_partitions = dg.DynamicPartitionsDefinition(name=TASK_PARTITIONS)
timestamp_partitions = dg.DynamicPartitionsDefinition(name=TIMESTAMP_PARTITIONS)
backup_partitions = dg.MultiPartitionsDefinition(
    {TASK_DIMENSION: task_partitions, TIMESTAMP_DIMENSION: timestamp_partitions}
)


def backup_partition_key(task: str | None, timestamp: str) -> dg.MultiPartitionKey:
    """The partition of a set; task None, '' or 'global' is the global directory."""
    return dg.MultiPartitionKey({TASK_DIMENSION: task_key(task), TIMESTAMP_DIMENSION: validate_timestamp(timestamp)})


def backup_set_of(partition_key: str) -> tuple[str, str]:
    """(task, timestamp) of a partition key, both validated; InvalidParams for anything else.

    Runs launched by tag see a plain string, not a MultiPartitionKey, and any string can arrive that way
    (GraphQL accepts every key), so the key is parsed here rather than trusted.
    """
    parts = str(partition_key).split(MULTI_KEY_SEPARATOR)
    if len(parts) != 2:
        raise InvalidParams(
            f"Partition key {str(partition_key)!r:.80} is not 'task_id{MULTI_KEY_SEPARATOR}timestamp' "
            f"(e.g. 'global{MULTI_KEY_SEPARATOR}20261123_121700')."
        )
    # Dagster orders the dimensions of a multi-partition key by name: task_id, then timestamp.
    return validate_task_id(parts[0]), validate_timestamp(parts[1])


def invalid_partition_keys(instance: dg.DagsterInstance) -> dict[str, list[str]]:
    """Dynamic partition keys that are not a task key or a timestamp (added by hand or over GraphQL)."""
    checks = {TASK_PARTITIONS: validate_task_id, TIMESTAMP_PARTITIONS: validate_timestamp}
    invalid: dict[str, list[str]] = {}
    for name, check in checks.items():
        for key in instance.get_dynamic_partitions(name):
            try:
                check(key)
            except InvalidParams:
                invalid.setdefault(name, []).append(key)
    return invalid


def register_backup_partition(instance: dg.DagsterInstance, task: str, timestamp: str) -> dg.MultiPartitionKey:
    """Add both dimension keys of a set (a no-op for keys that exist) and return its partition key."""
    key = backup_partition_key(task, timestamp)
    for name, dimension in ((TASK_PARTITIONS, TASK_DIMENSION), (TIMESTAMP_PARTITIONS, TIMESTAMP_DIMENSION)):
        value = key.keys_by_dimension[dimension]
        if not instance.has_dynamic_partition(name, value):
            instance.add_dynamic_partitions(name, [value])
    return key


def remove_unused_partition_keys(
    instance: dg.DagsterInstance, deleted: Sequence[BackupSetInfo], remaining: Sequence[BackupSetInfo]
) -> list[str]:
    """Delete the task and timestamp keys of deleted sets that no set left on disk uses; the keys removed.

    Only keys of the deleted sets are candidates: a key added for a run about to start stays.
    """
    in_use = {TASK_PARTITIONS: {s.task for s in remaining}, TIMESTAMP_PARTITIONS: {s.timestamp for s in remaining}}
    candidates = {TASK_PARTITIONS: {s.task for s in deleted}, TIMESTAMP_PARTITIONS: {s.timestamp for s in deleted}}
    removed = []
    for name, keys in candidates.items():
        for key in sorted(keys - in_use[name]):
            if instance.has_dynamic_partition(name, key):
                instance.delete_dynamic_partition(name, key)
                removed.append(key)
    return removed
