"""Listing sets on disk, registering unknown ones in Dagster, the inventory, and the restore/truncate jobs."""

import json
import shutil
import uuid
from pathlib import Path

import dagster as dg

from pgvector_pipeline.assets.backup import ASSET_BY_TABLE
from pgvector_pipeline.assets.inventory import INVENTORY
from pgvector_pipeline.contract import BACKUP_JOB, BACKUP_SET_TAG, RESTORE_JOB, SET_PARTITIONS, TRUNCATE_JOB
from pgvector_pipeline.definitions import defs
from pgvector_pipeline.entry_points.cli import main
from pgvector_pipeline.names import COLLECTION_TABLE, EMBEDDING_TABLE, LANGCHAIN_POSTGRES
from pgvector_pipeline.operations.backup import back_up_database
from pgvector_pipeline.partitions import (
    backup_partition_key,
    backup_partitions,
    register_backup_partition,
)
from pgvector_pipeline.postgres.connection import redact_dsn
from pgvector_pipeline.resources import BackupStoreResource
from pgvector_pipeline.sensors.discovery import backup_discovery_sensor
from pgvector_pipeline.store.layout import GLOBAL_TASK_KEY, csv_name
from pgvector_pipeline.store.local import list_backup_sets
from pgvector_pipeline.store.roots import BACKUP_ROOT_ENV
from pgvector_pipeline.testing.db import execute, query
from tests.helpers import DSN_ENV, recent_timestamp, resources_config, run_backup
from tests.stores import make_store

LEGACY_FIXTURE = Path(__file__).parent / "fixtures" / "legacy_root" / "task_legacy"
LEGACY_TS = "20250101_120000"


def touch_set(directory: Path, timestamp: str, tables=(COLLECTION_TABLE, EMBEDDING_TABLE)) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for table in tables:
        (directory / csv_name(table, timestamp)).write_text("header\n")


def test_listing_complete_incomplete_filters_and_order(backup_root):
    touch_set(backup_root / "vector_bak", "20260101_000000")
    touch_set(backup_root / "task_1" / "vector_bak", "20260301_000000")
    touch_set(backup_root / "manual_2" / "vector_bak", "20260201_000000", tables=(EMBEDDING_TABLE,))
    touch_set(backup_root / "any_task" / "vector_bak", "20260401_000000")
    (backup_root / "any_task" / "vector_bak" / "langchain_pg_embedding_20260401_000000.csv.tmp").write_text("partial")
    (backup_root / "not a task" / "vector_bak").mkdir(parents=True)
    touch_set(backup_root / "not a task" / "vector_bak", "20260501_000000")
    (backup_root / "vector_bak" / "notes.txt").write_text("ignored")

    sets = list_backup_sets(backup_root)

    assert [(s.task, s.timestamp, s.complete) for s in sets] == [
        ("any_task", "20260401_000000", False),  # a .tmp of it is present
        ("task_1", "20260301_000000", True),
        ("manual_2", "20260201_000000", False),  # only one CSV
        ("global", "20260101_000000", True),
    ]
    assert [s.task for s in list_backup_sets(backup_root, global_only=True)] == ["global"]
    assert [s.timestamp for s in list_backup_sets(backup_root, task_id="task_1")] == ["20260301_000000"]
    assert list_backup_sets(backup_root, task_id="nobody") == []


def test_listing_reads_rows_from_manifests(store_db, backup_root, instance, monkeypatch):
    monkeypatch.setenv(DSN_ENV, store_db)
    make_store(store_db, LANGCHAIN_POSTGRES, create_tables=False)
    make_store_rows = query(store_db, "SELECT count(*) FROM langchain_pg_embedding")[0][0]
    assert make_store_rows == 8
    assert run_backup(instance, backup_root, "global", recent_timestamp()).success
    shutil.copytree(LEGACY_FIXTURE, backup_root / "task_legacy")

    new, legacy = list_backup_sets(backup_root)

    assert (new.task, new.has_manifest, new.has_log, new.rows(EMBEDDING_TABLE)) == (
        "global",
        True,
        True,
        make_store_rows,
    )
    assert (legacy.task, legacy.has_manifest, legacy.has_log, legacy.rows(EMBEDDING_TABLE)) == (
        "task_legacy",
        False,
        True,
        None,
    )
    assert (
        legacy.complete
        and legacy.sizes[EMBEDDING_TABLE]
        == (LEGACY_FIXTURE / "vector_bak" / csv_name(EMBEDDING_TABLE, LEGACY_TS)).stat().st_size
    )


def test_listing_thousands_of_sets(backup_root):
    made = []
    for task in range(20):
        for n in range(100):
            timestamp = f"2026{1 + n // 28:02d}{1 + n % 28:02d}_{task:02d}0000"
            touch_set(backup_root / f"task_{task}" / "vector_bak", timestamp)
            made.append((timestamp, f"task_{task}"))
    sets = list_backup_sets(backup_root)
    # Every set, each once, newest first (ties by task, descending), all complete.
    assert [(s.timestamp, s.task) for s in sets] == sorted(made, reverse=True)
    assert all(s.status == "legacy" and s.complete for s in sets)


def test_sensor_registers_a_legacy_set_once_and_it_restores_through_dagster(
    instance, empty_db, backup_root, monkeypatch
):
    make_store(empty_db, LANGCHAIN_POSTGRES)
    execute(empty_db, lambda cur: cur.execute("TRUNCATE langchain_pg_embedding, langchain_pg_collection"))
    monkeypatch.setenv(DSN_ENV, empty_db)
    shutil.copytree(LEGACY_FIXTURE, backup_root / "task_legacy")
    resources = {"backup_store": BackupStoreResource()}

    first = backup_discovery_sensor(dg.build_sensor_context(instance=instance, definitions=defs, resources=resources))

    key = backup_partition_key("task_legacy", LEGACY_TS)
    assert instance.get_dynamic_partitions(backup_partitions.name) == [f"task_legacy/{LEGACY_TS}"]
    assert instance.get_materialized_partitions(ASSET_BY_TABLE["langchain_pg_embedding"]) == {key}
    event = instance.get_latest_materialization_event(ASSET_BY_TABLE["langchain_pg_collection"]).asset_materialization
    adopted = backup_root / "task_legacy" / "vector_bak" / f"vector_backup_{LEGACY_TS}.json"
    assert event.partition == str(key) and event.metadata["manifest"].value == str(adopted)
    assert event.metadata["origin"].value.startswith("old system's set, adopted")
    assert json.loads(adopted.read_text())["kind"] == "adopted"
    assert event.metadata["dagster/row_count"].value == 2
    assert [r.job_name for r in first.run_requests] == ["vector_inventory_job"]

    second = backup_discovery_sensor(
        dg.build_sensor_context(instance=instance, definitions=defs, resources=resources, cursor=first.cursor)
    )
    assert isinstance(second, dg.SkipReason)
    assert len(instance.fetch_materializations(ASSET_BY_TABLE["langchain_pg_embedding"], limit=10).records) == 1

    restored = defs.resolve_job_def(RESTORE_JOB).execute_in_process(
        instance=instance, partition_key=key, run_config=resources_config()
    )
    assert restored.success
    assert query(empty_db, "SELECT count(*) FROM langchain_pg_embedding")[0][0] == 8
    output = restored.get_step_success_events()[0]
    assert output.step_key == "restore_vector_backup"


def test_restore_job_by_config_reports_metadata_and_clear_errors(instance, store_db, backup_root, monkeypatch):
    monkeypatch.setenv(DSN_ENV, store_db)
    shutil.copytree(LEGACY_FIXTURE, backup_root / "task_legacy")
    job = defs.resolve_job_def(RESTORE_JOB)

    def restore(**config):
        return job.execute_in_process(
            instance=instance,
            run_config={"ops": {"restore_vector_backup": {"config": config}}, **resources_config()},
            raise_on_error=False,
        )

    result = restore(
        backup_path="task_legacy/vector_bak",
        timestamp=LEGACY_TS,
        tables=[COLLECTION_TABLE, EMBEDDING_TABLE],
        allow_legacy=True,
    )
    assert result.success
    [output] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = output.event_specific_data.metadata
    assert metadata["backup_set"].value == f"task_legacy/{LEGACY_TS}"
    assert metadata[f"{EMBEDDING_TABLE}.rows_restored"].value == 8
    assert [r.data["rows_after"] for r in metadata["tables"].value.records] == [2, 8]
    assert metadata["target"].value == redact_dsn(store_db)

    for config, error_type, words in [
        ({"backup_path": "../elsewhere", "timestamp": LEGACY_TS}, "INVALID_PARAMS", "'..'"),
        ({"task_id": "task_legacy", "timestamp": "20250101_999999"}, "INVALID_PARAMS", "Timestamp"),
        ({"task_id": "task_legacy", "timestamp": "20250102_120000"}, "RESOURCE_NOT_FOUND", "No backup set"),
        (
            {"task_id": "task_legacy", "timestamp": LEGACY_TS, "tables": ["langchain_pg_foo"]},
            "INVALID_PARAMS",
            "langchain_pg_foo",
        ),
        ({"task_id": "task_legacy", "timestamp": LEGACY_TS}, "DATA_ERROR", "has no manifest"),
        ({"task_id": "task_legacy", "timestamp": LEGACY_TS, "allow_legacy": True}, "DATA_ERROR", "duplicate key"),
    ]:
        failed = restore(**config)
        assert not failed.success
        failure = failed.failure_data_for_node("restore_vector_backup").user_failure_data
        assert failure.metadata["error_type"].value == error_type and words in failure.description, failure.description
    assert query(store_db, "SELECT count(*) FROM langchain_pg_embedding")[0][0] == 8


def test_truncate_job(instance, store_db, monkeypatch):
    monkeypatch.setenv(DSN_ENV, store_db)
    make_rows = lambda cur: cur.execute(  # noqa: E731
        "INSERT INTO langchain_pg_collection VALUES (gen_random_uuid(), 'c', null);"
        "INSERT INTO langchain_pg_embedding (id, collection_id) SELECT 'x', uuid FROM langchain_pg_collection"
    )
    execute(store_db, make_rows)
    job = defs.resolve_job_def(TRUNCATE_JOB)
    resources = {"resources": {"pgvector": {"config": {"dsn": {"env": DSN_ENV}}}}}

    def truncate(config):
        ops = {"ops": {"truncate_vector_tables": {"config": config}}} if config is not None else {}
        return job.execute_in_process(instance=instance, run_config={**ops, **resources}, raise_on_error=False)

    for tables in (["langchain_pg_nope"], [COLLECTION_TABLE]):
        failed = truncate({"tables": tables})
        assert not failed.success
        description = failed.failure_data_for_node("truncate_vector_tables").user_failure_data.description
        assert ("langchain_pg_nope" in description) if tables != [COLLECTION_TABLE] else ("foreign key" in description)
    assert query(store_db, "SELECT count(*) FROM langchain_pg_embedding")[0][0] == 1

    result = truncate(None)
    assert result.success
    assert query(
        store_db, "SELECT (SELECT count(*) FROM langchain_pg_embedding), (SELECT count(*) FROM langchain_pg_collection)"
    ) == [(0, 1)]
    result = truncate({"tables": [EMBEDDING_TABLE, COLLECTION_TABLE]})
    [output] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    assert output.event_specific_data.metadata[f"{COLLECTION_TABLE}.rows_before"].value == 1
    assert query(store_db, "SELECT count(*) FROM langchain_pg_collection")[0][0] == 0


def test_inventory_asset_lists_every_set(instance, backup_root):
    touch_set(backup_root / "vector_bak", "20260101_000000")
    touch_set(backup_root / "task_1" / "vector_bak", "20260301_000000", tables=(COLLECTION_TABLE,))
    result = defs.resolve_job_def("vector_inventory_job").execute_in_process(instance=instance)
    frame = result.output_for_node("vector_backup_inventory")
    assert frame[["task_id", "timestamp", "complete"]].values.tolist() == [
        ["task_1", "20260301_000000", False],
        ["global", "20260101_000000", True],
    ]
    materialization = instance.get_latest_materialization_event(INVENTORY).asset_materialization
    assert materialization.metadata["complete_sets"].value == 1
    assert len(materialization.metadata["sets"].value.records) == 2


def test_inventory_counts_stay_integers_when_a_set_has_none(empty_db, backup_root):
    make_store(empty_db, LANGCHAIN_POSTGRES)
    from pgvector_pipeline.assets.inventory import inventory_frame, inventory_metadata
    from pgvector_pipeline.store.local import LocalBackupStore

    back_up_database(empty_db, "public", LocalBackupStore(backup_root), "global", "20261125_150000")
    touch_set(backup_root / "vector_bak", "20261125_140000")  # a legacy set: no counts

    records = inventory_metadata(inventory_frame(list_backup_sets(backup_root), str(backup_root)), str(backup_root))[
        "sets"
    ].value.records
    counted, legacy = (record.data for record in records)
    assert (counted["embedding_rows"], legacy["embedding_rows"]) == (8, None)
    assert type(counted["embedding_rows"]) is int and type(counted["collection_bytes"]) is int


def test_one_bogus_set_never_breaks_the_inventory_or_discovery(instance, empty_db, backup_root, capsys):
    """A manifest claiming 10**30 rows, and files named with a date that does not exist: those sets list as damaged
    with the reason; every other set still lists, in the inventory and the discovery sensor's tick."""
    from pgvector_pipeline.operations.backup import back_up_database
    from pgvector_pipeline.store.local import LocalBackupStore

    make_store(empty_db, LANGCHAIN_POSTGRES)
    store = LocalBackupStore(backup_root)
    good, bogus = (back_up_database(empty_db, "public", store, "global", None).timestamp for _ in range(2))
    manifest = backup_root / "vector_bak" / f"vector_backup_{bogus}.json"
    document = json.loads(manifest.read_text())
    document["tables"][EMBEDDING_TABLE]["rows"] = 10**30
    manifest.write_text(json.dumps(document))
    touch_set(backup_root / "task_odd" / "vector_bak", "20261399_000000")  # the 99th of month 13

    listed = {(s.task, s.timestamp): s for s in list_backup_sets(backup_root)}
    assert listed[("global", good)].status == "complete"
    assert listed[("global", bogus)].status == "damaged" and "rows" in listed[("global", bogus)].problem
    odd = listed[("task_odd", "20261399_000000")]
    assert odd.status == "damaged" and "is not a real date and time" in odd.problem

    result = defs.resolve_job_def("vector_inventory_job").execute_in_process(instance=instance)
    frame = result.output_for_node("vector_backup_inventory")
    assert sorted(frame[["timestamp", "status"]].values.tolist()) == sorted(
        [[good, "complete"], [bogus, "damaged"], ["20261399_000000", "damaged"]]
    )
    tick = backup_discovery_sensor(
        dg.build_sensor_context(
            instance=instance, definitions=defs, resources={"backup_store": BackupStoreResource(root=str(backup_root))}
        )
    )
    assert [r.job_name for r in tick.run_requests] == ["vector_inventory_job"]
    assert instance.get_dynamic_partitions(backup_partitions.name) == [f"global/{good}"]
    # The command line's table for people shows it too, its time as named.
    capsys.readouterr()
    assert main(["--direct", "--root", str(backup_root), "list"]) == 0
    [odd_row] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("task_odd")]
    assert odd_row.split()[1:3] == ["20261399_000000", "damaged"]


def test_discovery_takes_a_large_old_root_in_over_bounded_ticks(instance, backup_root, monkeypatch):
    monkeypatch.setenv("PGVECTOR_DISCOVERY_MAX_SETS_PER_TICK", "10")
    for n in range(15):
        touch_set(backup_root / f"task_old_{n}" / "vector_bak", "20250101_000000")
    resources = {"backup_store": BackupStoreResource()}
    cursor, registered = None, []
    for _ in range(5):
        result = backup_discovery_sensor(
            dg.build_sensor_context(instance=instance, definitions=defs, resources=resources, cursor=cursor)
        )
        if isinstance(result, dg.SkipReason):
            break
        cursor = result.cursor
        registered.append(len(instance.get_materialized_partitions(ASSET_BY_TABLE["langchain_pg_embedding"])))
    # Ten sets of work per tick: 10 adoptions; 5 adoptions + 5 registrations; the last 10 registrations.
    assert registered == [0, 5, 15]
    assert len(instance.get_dynamic_partitions(backup_partitions.name)) == 15


def test_an_instance_of_the_old_partition_layout_moves_to_one_partition_per_set(
    instance, store_db, backup_root, monkeypatch
):
    from pgvector_pipeline.contract import LEGACY_PARTITIONS
    from pgvector_pipeline.store.local import LocalBackupStore

    monkeypatch.setenv(DSN_ENV, store_db)
    made = [back_up_database(store_db, "public", LocalBackupStore(backup_root), "global", None) for _ in range(2)]
    # What the layout before left: every task and every timestamp a dimension key, 1 × 3 "partitions" for 2 sets.
    instance.add_dynamic_partitions(LEGACY_PARTITIONS[0], ["global"])
    instance.add_dynamic_partitions(LEGACY_PARTITIONS[1], [m.timestamp for m in made] + ["20200101_000000"])
    resources = {"backup_store": BackupStoreResource()}

    result = backup_discovery_sensor(dg.build_sensor_context(instance=instance, definitions=defs, resources=resources))

    assert {(r.partitions_def_name, tuple(r.partition_keys)) for r in result.dynamic_partitions_requests} == {
        (LEGACY_PARTITIONS[0], ("global",)),
        (LEGACY_PARTITIONS[1], (made[0].timestamp, made[1].timestamp, "20200101_000000")),
    }
    keys = [f"global/{m.timestamp}" for m in made]
    assert sorted(instance.get_dynamic_partitions(backup_partitions.name)) == keys
    assert instance.get_materialized_partitions(ASSET_BY_TABLE[EMBEDDING_TABLE]) == set(keys)


def apply_partition_requests(result, instance) -> None:
    """What the daemon does with a discovery tick's partition requests (a test calls the sensor directly)."""
    for request in result.dynamic_partitions_requests:
        if isinstance(request, dg.DeleteDynamicPartitionsRequest):
            for key in request.partition_keys:
                instance.delete_dynamic_partition(request.partitions_def_name, key)
        else:
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))


def discovery_tick(instance, cursor=None):
    """One tick of backup_discovery_sensor on the root of PGVECTOR_BACKUP_ROOT, its requests applied."""
    context = dg.build_sensor_context(
        instance=instance, definitions=defs, resources={"backup_store": BackupStoreResource()}, cursor=cursor
    )
    result = backup_discovery_sensor(context)
    if not isinstance(result, dg.SkipReason):
        apply_partition_requests(result, instance)
    return result


def removed_keys(result) -> list[str]:
    return sorted(
        key
        for request in result.dynamic_partitions_requests
        if isinstance(request, dg.DeleteDynamicPartitionsRequest) and request.partitions_def_name == SET_PARTITIONS
        for key in request.partition_keys
    )


def partition_keys(instance) -> list[str]:
    return sorted(instance.get_dynamic_partitions(SET_PARTITIONS))


def run_naming(instance, status: dg.DagsterRunStatus, tags: dict[str, str]) -> None:
    """A backup run of this instance in `status` carrying `tags`, as the queue and the run launcher record it."""
    instance.add_run(dg.DagsterRun(job_name=BACKUP_JOB, run_id=str(uuid.uuid4()), status=status, tags=tags))


def test_discovery_removes_the_partitions_of_sets_deleted_outside_the_tool(instance, backup_root, capfd):
    touch_set(backup_root / "task_a" / "vector_bak", "20260101_000000")
    touch_set(backup_root / "task_b" / "vector_bak", "20260102_000000")
    first = discovery_tick(instance)
    assert partition_keys(instance) == ["task_a/20260101_000000", "task_b/20260102_000000"]

    shutil.rmtree(backup_root / "task_a")  # outside the tool
    # Partitions of sets being written, whose files are not all there yet, stay:
    # one registered for a backup about to start (of now: the only partition a backup run may write) ...
    about_to_start = register_backup_partition(instance, GLOBAL_TASK_KEY, recent_timestamp())
    # ... one a launched run names (its partition) and one a running backup claimed (its set tag) ...
    launched = register_backup_partition(instance, "task_c", "20260103_000000")
    run_naming(instance, dg.DagsterRunStatus.NOT_STARTED, {"dagster/partition": launched})
    claimed = register_backup_partition(instance, "task_d", "20260104_000000")
    run_naming(instance, dg.DagsterRunStatus.STARTED, {BACKUP_SET_TAG: claimed})
    # ... and a set half written (its collection file done, its embeddings still a .tmp).
    touch_set(backup_root / "task_e" / "vector_bak", "20260105_000000", tables=(COLLECTION_TABLE,))
    (backup_root / "task_e" / "vector_bak" / (csv_name(EMBEDDING_TABLE, "20260105_000000") + ".tmp")).write_text("h")
    writing = register_backup_partition(instance, "task_e", "20260105_000000")
    # A run that ended does not keep its partition.
    failed = register_backup_partition(instance, "task_f", "20260106_000000")
    run_naming(instance, dg.DagsterRunStatus.FAILURE, {"dagster/partition": failed})
    capfd.readouterr()

    second = discovery_tick(instance, first.cursor)

    assert removed_keys(second) == ["task_a/20260101_000000", failed]
    assert f"Removing 2 partitions of {SET_PARTITIONS} whose sets are not in {backup_root}: " in capfd.readouterr().err
    assert partition_keys(instance) == sorted(["task_b/20260102_000000", about_to_start, launched, claimed, writing])
    # Nothing else vanished: the next tick has nothing to do.
    assert isinstance(discovery_tick(instance, second.cursor), dg.SkipReason)


def test_discovery_follows_the_root_when_it_moves(instance, store_db, backup_root, s3_env, s3_bucket, monkeypatch):
    touch_set(backup_root / "vector_bak", "20260101_000000")
    touch_set(backup_root / "task_a" / "vector_bak", "20260102_000000")
    local = discovery_tick(instance)
    local_keys = ["global/20260101_000000", "task_a/20260102_000000"]
    assert partition_keys(instance) == local_keys

    # The deployment moves its root to S3 (as the demo does): the local sets are not offered any more.
    monkeypatch.setenv(BACKUP_ROOT_ENV, f"s3://{s3_bucket}/backups")
    back_up_database(store_db, "public", BackupStoreResource().store(), GLOBAL_TASK_KEY, "20260201_000000")
    moved = discovery_tick(instance, local.cursor)
    assert removed_keys(moved) == local_keys
    assert partition_keys(instance) == ["global/20260201_000000"]

    # And back: the local sets' partitions return with the materializations they had, none recorded twice.
    monkeypatch.setenv(BACKUP_ROOT_ENV, str(backup_root))
    back = discovery_tick(instance, moved.cursor)
    assert removed_keys(back) == ["global/20260201_000000"]
    assert partition_keys(instance) == local_keys
    events = instance.fetch_materializations(ASSET_BY_TABLE[EMBEDDING_TABLE], limit=100).records
    assert sorted(e.partition_key for e in events) == sorted([*local_keys, "global/20260201_000000"])


def test_discovery_removes_a_bounded_number_of_partitions_per_tick(instance, backup_root, monkeypatch):
    monkeypatch.setenv("PGVECTOR_DISCOVERY_MAX_SETS_PER_TICK", "10")
    instance.add_dynamic_partitions(SET_PARTITIONS, [f"task_gone_{n:02d}/20250101_000000" for n in range(15)])

    first = discovery_tick(instance)
    second = discovery_tick(instance, first.cursor)

    assert [len(removed_keys(first)), len(removed_keys(second))] == [10, 5]
    assert partition_keys(instance) == []
    assert isinstance(discovery_tick(instance, second.cursor), dg.SkipReason)
