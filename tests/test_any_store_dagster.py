"""The Dagster jobs, sensors and checks on every backup store: a local directory and S3 (a real SeaweedFS
server), chosen as a deployment chooses it, by PGVECTOR_BACKUP_ROOT (see the `any_root` fixture)."""

import dagster as dg

from pgvector_pipeline.assets.backup import ASSET_BY_TABLE
from pgvector_pipeline.contract import (
    INVENTORY_JOB,
    RESTORE_JOB,
    RESTORE_OP,
    RETENTION_JOB,
    TRUNCATE_JOB,
    RestoreFlags,
    restore_run_config,
    retention_run_config,
)
from pgvector_pipeline.definitions import defs
from pgvector_pipeline.names import COLLECTION_TABLE, EMBEDDING_TABLE, LANGCHAIN_POSTGRES
from pgvector_pipeline.operations.backup import back_up_database
from pgvector_pipeline.partitions import backup_partition_key
from pgvector_pipeline.resources import BackupStoreResource
from pgvector_pipeline.sensors.discovery import backup_discovery_sensor
from pgvector_pipeline.sensors.task_backup import task_backup_sensor
from pgvector_pipeline.testing.db import query
from tests.helpers import DSN_ENV, recent_timestamp, resources_config, run_backup
from tests.stores import make_store


def count(dsn: str, table: str) -> int:
    return query(dsn, f"SELECT count(*) FROM {table}")[0][0]


def test_backup_restore_and_retention_jobs(instance, empty_db, any_root, any_store, monkeypatch):
    make_store(empty_db, LANGCHAIN_POSTGRES)
    monkeypatch.setenv(DSN_ENV, empty_db)
    first, second = recent_timestamp(), None
    backed_up = run_backup(instance, any_root, "global", first)
    assert backed_up.success
    location = any_store.location("global")
    event = instance.get_latest_materialization_event(ASSET_BY_TABLE[EMBEDDING_TABLE]).asset_materialization
    assert event.metadata["backup_dir"].value == location
    assert event.metadata["path"].value.startswith(f"{location}/{EMBEDDING_TABLE}_{first}.csv")
    assert event.metadata["manifest"].value == f"{location}/vector_backup_{first}.json"
    assert event.metadata["dagster/row_count"].value == 8

    truncated = defs.resolve_job_def(TRUNCATE_JOB).execute_in_process(instance=instance, run_config=resources_config())
    assert truncated.success and count(empty_db, EMBEDDING_TABLE) == 0
    restored = defs.resolve_job_def(RESTORE_JOB).execute_in_process(
        instance=instance,
        run_config={
            **restore_run_config("global", first, flags=RestoreFlags(truncate_before_restore=True)),
            **resources_config(),
        },
    )
    assert restored.success and count(empty_db, EMBEDDING_TABLE) == 8 and count(empty_db, COLLECTION_TABLE) == 2

    while (second := recent_timestamp()) == first:
        pass
    assert run_backup(instance, any_root, "global", second).success
    retained = defs.resolve_job_def(RETENTION_JOB).execute_in_process(
        instance=instance, run_config=retention_run_config(keep_newest=1, dry_run=False)
    )
    assert retained.success
    assert [s.timestamp for s in any_store.list_sets()] == [second]
    inventory = instance.get_latest_materialization_event(dg.AssetKey("vector_backup_inventory"))
    assert inventory.asset_materialization.metadata["dagster/row_count"].value == 1


def test_a_restore_config_names_the_set_by_path_in_the_store(instance, empty_db, any_root, any_store, monkeypatch):
    make_store(empty_db, LANGCHAIN_POSTGRES)
    monkeypatch.setenv(DSN_ENV, empty_db)
    made = back_up_database(empty_db, "public", any_store, "global", None)
    result = defs.resolve_job_def(RESTORE_JOB).execute_in_process(
        instance=instance,
        run_config={
            "ops": {
                RESTORE_OP: {
                    "config": {
                        "backup_path": any_store.location("global"),
                        "timestamp": made.timestamp,
                        "truncate_before_restore": True,
                        "verify_only": True,
                    }
                }
            },
            **resources_config(),
        },
    )
    assert result.success


def test_sensors_and_the_freshness_check(instance, empty_db, any_root, any_store):
    make_store(empty_db, LANGCHAIN_POSTGRES)
    resources = {"backup_store": BackupStoreResource()}

    [missing] = defs.resolve_job_def(INVENTORY_JOB).execute_in_process(instance=instance).get_asset_check_evaluations()
    assert not missing.passed and missing.description.endswith(f"in {any_store.location('global')}.")

    made = back_up_database(empty_db, "public", any_store, "global", None)
    discovered = backup_discovery_sensor(
        dg.build_sensor_context(instance=instance, definitions=defs, resources=resources)
    )
    key = backup_partition_key("global", made.timestamp)
    assert instance.get_materialized_partitions(ASSET_BY_TABLE[EMBEDDING_TABLE]) == {key}
    assert [r.job_name for r in discovered.run_requests] == ["vector_inventory_job"]
    [fresh] = defs.resolve_job_def(INVENTORY_JOB).execute_in_process(instance=instance).get_asset_check_evaluations()
    assert fresh.passed

    # A training task's place in the store: a directory on disk, a prefix (here a folder marker) on S3.
    make_task_place(any_store, any_root, "task_new")
    tasks = task_backup_sensor(dg.build_sensor_context(instance=instance, resources=resources))
    assert [r.run_key for r in tasks.run_requests] == ["task-backup-task_new"]


def make_task_place(store, root: str, task: str) -> None:
    if hasattr(store, "client"):
        store.client.put_object(Bucket=store.root.bucket, Key=store.root.key(task) + "/", Body=b"")
    else:
        from pathlib import Path

        (Path(root) / task).mkdir()
