"""Backup sets as partitions: task id x timestamp, both dynamic."""

import time

import dagster as dg

from pgvector_pipeline.store.layout import new_timestamp, task_key, validate_timestamp

TASK_DIMENSION = "task_id"
TIMESTAMP_DIMENSION = "timestamp"

task_partitions = dg.DynamicPartitionsDefinition(name="vector_backup_task")
timestamp_partitions = dg.DynamicPartitionsDefinition(name="vector_backup_timestamp")
backup_partitions = dg.MultiPartitionsDefinition(
    {TASK_DIMENSION: task_partitions, TIMESTAMP_DIMENSION: timestamp_partitions}
)


def backup_partition_key(task: str | None, timestamp: str) -> dg.MultiPartitionKey:
    """The partition of a set; task None, '' or 'global' is the global directory."""
    return dg.MultiPartitionKey({TASK_DIMENSION: task_key(task), TIMESTAMP_DIMENSION: validate_timestamp(timestamp)})


def backup_set_of(partition_key: str) -> tuple[str, str]:
    """(task, timestamp) of a partition key; runs launched by tag see a plain string, not a MultiPartitionKey."""
    keys = backup_partitions.get_partition_key_from_str(str(partition_key)).keys_by_dimension
    return keys[TASK_DIMENSION], keys[TIMESTAMP_DIMENSION]


def register_backup_partition(instance: dg.DagsterInstance, task: str, timestamp: str) -> dg.MultiPartitionKey:
    """Add both dimension keys of a set (a no-op for keys that exist) and return its partition key."""
    key = backup_partition_key(task, timestamp)
    for definition, dimension in ((task_partitions, TASK_DIMENSION), (timestamp_partitions, TIMESTAMP_DIMENSION)):
        value = key.keys_by_dimension[dimension]
        if not instance.has_dynamic_partition(definition.name, value):
            instance.add_dynamic_partitions(definition.name, [value])
    return key


def fresh_timestamp(instance: dg.DagsterInstance) -> str:
    """A timestamp key no earlier request took: a same-second collision waits for the next second."""
    timestamp = new_timestamp()
    while instance.has_dynamic_partition(timestamp_partitions.name, timestamp):
        time.sleep(1)
        timestamp = new_timestamp()
    return timestamp
