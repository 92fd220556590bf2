"""Retention: which sets a policy keeps, what it deletes on disk and in Dagster, and what it never touches."""

import json
from datetime import datetime

import dagster as dg
import pytest

from pgvector_pipeline.contract import RETENTION_JOB, retention_run_config
from pgvector_pipeline.definitions import defs
from pgvector_pipeline.errors import InvalidParams
from pgvector_pipeline.names import COLLECTION_TABLE, EMBEDDING_TABLE
from pgvector_pipeline.operations.backup import back_up_database
from pgvector_pipeline.partitions import backup_partitions, register_backup_partition
from pgvector_pipeline.store.backup_set import SetLock
from pgvector_pipeline.store.files import DEFAULT_FILE_MODE
from pgvector_pipeline.store.layout import LOG_FILE_NAME, csv_name
from pgvector_pipeline.store.local import LocalBackupStore, list_backup_sets
from pgvector_pipeline.store.locations import open_location
from pgvector_pipeline.store.retention import RetentionPolicy, plan_retention

NOW = datetime(2026, 11, 24, 12, 0, 0)


def touch_set(directory, timestamp, tables=(COLLECTION_TABLE, EMBEDDING_TABLE)):
    directory.mkdir(parents=True, exist_ok=True)
    for table in tables:
        (directory / csv_name(table, timestamp)).write_text("header\n" + "x" * 100 + "\n")


def step_output_metadata(result):
    [output] = [e for e in result.events_for_node("delete_old_backup_sets") if e.event_type_value == "STEP_OUTPUT"]
    return output.event_specific_data.metadata


def decisions_by_set(root, policy):
    return {
        (d.backup_set.task, d.backup_set.timestamp): d.delete
        for d in plan_retention(list_backup_sets(root), policy, NOW)
    }


def test_keep_newest_per_location(backup_root):
    for day in ("01", "02", "03", "04"):
        touch_set(backup_root / "vector_bak", f"202611{day}_000000")
    touch_set(backup_root / "task_1" / "vector_bak", "20261001_000000")

    plan = decisions_by_set(backup_root, RetentionPolicy(keep_newest=2))

    assert plan == {
        ("global", "20261104_000000"): False,
        ("global", "20261103_000000"): False,
        ("global", "20261102_000000"): True,
        ("global", "20261101_000000"): True,
        ("task_1", "20261001_000000"): False,  # the only set of its location
    }


def test_max_age_keeps_young_sets_and_always_the_newest_complete(backup_root):
    touch_set(backup_root / "vector_bak", "20261123_000000")
    touch_set(backup_root / "vector_bak", "20261101_000000")
    touch_set(backup_root / "task_old" / "vector_bak", "20250101_000000")
    touch_set(backup_root / "task_old" / "vector_bak", "20250102_000000", tables=(EMBEDDING_TABLE,))  # incomplete

    plan = decisions_by_set(backup_root, RetentionPolicy(max_age_days=7))

    assert plan == {
        ("global", "20261123_000000"): False,
        ("global", "20261101_000000"): True,
        # The incomplete set is newer, but the newest *complete* set is what a location cannot lose.
        ("task_old", "20250102_000000"): True,
        ("task_old", "20250101_000000"): False,
    }


def test_both_rules_keep_what_either_keeps(backup_root):
    for day in ("01", "10", "20", "23"):
        touch_set(backup_root / "vector_bak", f"202611{day}_000000")

    plan = decisions_by_set(backup_root, RetentionPolicy(keep_newest=1, max_age_days=7))

    assert [ts for (_, ts), delete in plan.items() if delete] == ["20261110_000000", "20261101_000000"]


@pytest.mark.parametrize(
    "keep_newest, max_age_days, words",
    [(None, None, "needs keep_newest"), (0, None, "at least 1"), (None, 0, "more than 0"), (None, -1.5, "more than 0")],
)
def test_bad_policies_are_refused(keep_newest, max_age_days, words):
    with pytest.raises(InvalidParams, match=words):
        RetentionPolicy(keep_newest, max_age_days)


def test_retention_job_deletes_logs_and_removes_partition_keys(store_db, backup_root):
    for timestamp in ("20261101_000000", "20261102_000000", "20261103_000000"):
        back_up_database(store_db, "public", LocalBackupStore(backup_root), "global", timestamp)
    (backup_root / "task_9").mkdir()
    back_up_database(store_db, "public", LocalBackupStore(backup_root), "task_9", "20261102_000000")
    with dg.instance_for_test() as instance:
        for s in list_backup_sets(backup_root):
            register_backup_partition(instance, s.task, s.timestamp)
        job = defs.resolve_job_def(RETENTION_JOB)

        dry = job.execute_in_process(instance=instance, run_config={**retention_run_config(keep_newest=1)})
        assert dry.success
        assert len(list_backup_sets(backup_root)) == 4
        assert step_output_metadata(dry)["sets_to_delete"].value == 2

        result = job.execute_in_process(
            instance=instance,
            run_config={**retention_run_config(keep_newest=1, dry_run=False)},
        )
        assert result.success
        # Newest first by when each was taken (the manifests' started_at): task_9's set was made last.
        assert [(s.task, s.timestamp) for s in list_backup_sets(backup_root)] == [
            ("task_9", "20261102_000000"),
            ("global", "20261103_000000"),
        ]
        assert sorted(p.name for p in (backup_root / "vector_bak").iterdir()) == [
            "langchain_pg_collection_20261103_000000.csv.zst",
            "langchain_pg_embedding_20261103_000000.csv.zst",
            "vector_backup_20261103_000000.json",
            LOG_FILE_NAME,
        ]
        log = (backup_root / "vector_bak" / LOG_FILE_NAME).read_text()
        assert "retention deleted set 20261101_000000 (complete, " in log
        assert "    vector_backup_20261102_000000.json\n" in log
        # Only the partitions of the sets that are left: one per set.
        assert sorted(instance.get_dynamic_partitions(backup_partitions.name)) == [
            "global/20261103_000000",
            "task_9/20261102_000000",
        ]
        metadata = step_output_metadata(result)
        assert metadata["sets_deleted"].value == 2 and metadata["bytes_freed"].value > 0
        inventory = instance.get_latest_materialization_event(dg.AssetKey("vector_backup_inventory"))
        assert inventory.asset_materialization.metadata["dagster/row_count"].value == 2


def test_a_set_being_written_is_never_deleted(backup_root):
    touch_set(backup_root / "vector_bak", "20261101_000000")
    touch_set(backup_root / "vector_bak", "20261102_000000")
    touch_set(backup_root / "vector_bak", "20261103_000000")
    held = SetLock.try_acquire(open_location(backup_root, "global"), "20261101_000000", DEFAULT_FILE_MODE)
    try:
        with dg.instance_for_test() as instance:
            result = defs.resolve_job_def(RETENTION_JOB).execute_in_process(
                instance=instance,
                run_config={**retention_run_config(keep_newest=1, dry_run=False)},
            )
        assert result.success
        # With its lock held the set lists as unfinished: retention leaves it to its writer.
        assert [s.timestamp for s in list_backup_sets(backup_root)] == ["20261103_000000", "20261101_000000"]
    finally:
        held.release()


def test_newest_is_decided_by_the_time_taken_not_the_name_across_a_dst_fall_back(store_db, backup_root):
    # 01:30 EDT, then 01:15 EST half an hour later: the later set has the earlier local name.
    taken = {"20261101_013000": "2026-11-01T01:30:00-04:00", "20261101_011500": "2026-11-01T01:15:00-05:00"}
    for timestamp, started_at in taken.items():
        result = back_up_database(store_db, "public", LocalBackupStore(backup_root), "global", timestamp)
        manifest = json.loads(result.manifest_path.read_text())
        manifest["started_at"] = started_at
        result.manifest_path.write_text(json.dumps(manifest))

    sets = list_backup_sets(backup_root)
    decisions = {d.backup_set.timestamp: d.delete for d in plan_retention(sets, RetentionPolicy(keep_newest=1))}

    assert [s.timestamp for s in sets] == ["20261101_011500", "20261101_013000"]
    assert decisions == {"20261101_011500": False, "20261101_013000": True}


def test_a_set_named_with_no_real_time_is_deleted_like_any_damaged_set(backup_root):
    touch_set(backup_root / "vector_bak", "20261101_000000")
    touch_set(backup_root / "vector_bak", "20261399_000000")  # the 99th of month 13: listed as damaged

    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def(RETENTION_JOB).execute_in_process(
            instance=instance, run_config=retention_run_config(keep_newest=1, dry_run=False), raise_on_error=False
        )

    assert result.success
    assert step_output_metadata(result)["sets_deleted"].value == 1
    assert [s.timestamp for s in list_backup_sets(backup_root)] == ["20261101_000000"]
