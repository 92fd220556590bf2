"""Schedules, the task sensor and the freshness check, evaluated in process (the daemon runs them in
tests/test_deployment.py)."""

import json

import dagster as dg
import pytest

from pgvector_pipeline.contract import (
    BACKUP_SCHEDULE,
    FRESHNESS_CHECK,
    INVENTORY_JOB,
    REQUEST_BACKUP_OP,
    RETENTION_OP,
    RETENTION_SCHEDULE,
)
from pgvector_pipeline.definitions import defs
from pgvector_pipeline.operations.backup import back_up_database
from pgvector_pipeline.resources import BackupStoreResource
from pgvector_pipeline.schedules.backup import build_daily_vector_backup_schedule
from pgvector_pipeline.schedules.retention import retention_tick
from pgvector_pipeline.sensors.task_backup import task_backup_sensor
from pgvector_pipeline.store.local import LocalBackupStore
from tests.helpers import recent_timestamp


def sensor_result(instance, cursor=None):
    """A tick of task_backup_sensor on the root of PGVECTOR_BACKUP_ROOT (the backup_root fixture sets it)."""
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"backup_store": BackupStoreResource()}
    )
    return task_backup_sensor(context)


def test_task_sensor_backs_up_each_new_task_directory_once(backup_root, monkeypatch):
    (backup_root / "task_done" / "vector_bak").mkdir(parents=True)
    (backup_root / "task_done" / "vector_bak" / "langchain_pg_embedding_20261101_000000.csv").write_text("id\n")
    (backup_root / "task_new").mkdir()
    (backup_root / "global").mkdir()  # reserved: not a task
    (backup_root / "not a task").mkdir()
    with dg.instance_for_test() as instance:
        first = sensor_result(instance)

        assert [r.run_key for r in first.run_requests] == ["task-backup-task_new"]
        config = first.run_requests[0].run_config["ops"][REQUEST_BACKUP_OP]["config"]
        assert config == {"task_id": "task_new", "truncate_after_backup": False, "create_task_dir": False}
        assert json.loads(first.cursor) == ["task_done", "task_new"]

        assert isinstance(sensor_result(instance, first.cursor), dg.SkipReason)

        (backup_root / "task_later").mkdir()
        monkeypatch.setenv("PGVECTOR_TASK_BACKUP_TRUNCATE", "true")
        later = sensor_result(instance, first.cursor)
        assert [r.run_key for r in later.run_requests] == ["task-backup-task_later"]
        assert later.run_requests[0].run_config["ops"][REQUEST_BACKUP_OP]["config"]["truncate_after_backup"] is True


def test_backup_schedule_cron_and_time_zone_come_from_the_environment(monkeypatch):
    default = defs.resolve_schedule_def(BACKUP_SCHEDULE)
    assert (default.cron_schedule, default.execution_timezone) == ("0 2 * * *", "UTC")
    assert default.default_status == dg.DefaultScheduleStatus.STOPPED

    monkeypatch.setenv("PGVECTOR_BACKUP_CRON", "15 */6 * * *")
    monkeypatch.setenv("PGVECTOR_BACKUP_TIMEZONE", "Europe/Berlin")
    schedule = build_daily_vector_backup_schedule()
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("15 */6 * * *", "Europe/Berlin")

    monkeypatch.setenv("PGVECTOR_BACKUP_CRON", "every day")
    with pytest.raises(ValueError, match="PGVECTOR_BACKUP_CRON: Found invalid cron schedule 'every day'"):
        build_daily_vector_backup_schedule()
    monkeypatch.setenv("PGVECTOR_BACKUP_CRON", "0 2 * * *")
    monkeypatch.setenv("PGVECTOR_BACKUP_TIMEZONE", "Mars/Olympus")
    with pytest.raises(ValueError, match="PGVECTOR_BACKUP_TIMEZONE='Mars/Olympus' is not an IANA time zone"):
        build_daily_vector_backup_schedule()


def test_retention_schedule_reads_its_policy_at_each_tick(monkeypatch):
    assert defs.resolve_schedule_def(RETENTION_SCHEDULE).default_status == dg.DefaultScheduleStatus.STOPPED
    context = dg.build_schedule_context()
    skipped = retention_tick(context)
    assert isinstance(skipped, dg.SkipReason) and "PGVECTOR_RETENTION_KEEP_NEWEST" in skipped.skip_message

    monkeypatch.setenv("PGVECTOR_RETENTION_KEEP_NEWEST", "7")
    request = retention_tick(context)
    assert request.run_config["ops"][RETENTION_OP]["config"] == {"dry_run": False, "keep_newest": 7}

    monkeypatch.setenv("PGVECTOR_RETENTION_KEEP_NEWEST", "seven")
    assert "whole number" in retention_tick(context).skip_message


def test_freshness_check_fails_without_a_recent_global_backup(store_db, backup_root):
    inventory_only: dict = {}
    job = defs.resolve_job_def(INVENTORY_JOB)
    with dg.instance_for_test() as instance:
        [none] = job.execute_in_process(instance=instance, run_config=inventory_only).get_asset_check_evaluations()
        assert (
            not none.passed
            and none.description == f"There is no complete global backup in {backup_root / 'vector_bak'}."
        )

        old_set = back_up_database(store_db, "public", LocalBackupStore(backup_root), "global", "20261101_000000")
        # Age is the manifest's started_at (an absolute time), not the name: make this set a month old.
        manifest = json.loads(old_set.manifest_path.read_text())
        manifest["started_at"] = "2026-11-01T00:00:00+00:00"
        old_set.manifest_path.write_text(json.dumps(manifest))
        [old] = job.execute_in_process(instance=instance, run_config=inventory_only).get_asset_check_evaluations()
        assert not old.passed and "20261101_000000" in old.description
        assert "older than 26 h. Is daily_vector_backup_schedule running?" in old.description

        back_up_database(store_db, "public", LocalBackupStore(backup_root), "global", recent_timestamp())
        [fresh] = job.execute_in_process(instance=instance, run_config=inventory_only).get_asset_check_evaluations()
        assert fresh.passed and fresh.check_name == FRESHNESS_CHECK


def test_task_sensor_requests_a_bounded_number_of_backups_per_tick(backup_root, monkeypatch):
    monkeypatch.setenv("PGVECTOR_TASK_BACKUP_MAX_RUNS_PER_TICK", "5")
    for n in range(12):
        (backup_root / f"task_{n:02d}").mkdir()
    with dg.instance_for_test() as instance:
        cursor, per_tick = None, []
        for _ in range(4):
            result = sensor_result(instance, cursor)
            if isinstance(result, dg.SkipReason):
                break
            per_tick.append(len(result.run_requests))
            cursor = result.cursor
    assert per_tick == [5, 5, 2]
    assert len(json.loads(cursor)) == 12


def test_a_bad_freshness_age_fails_the_check_naming_the_variable(backup_root, monkeypatch):
    monkeypatch.setenv("PGVECTOR_GLOBAL_BACKUP_MAX_AGE_HOURS", "a day")
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def(INVENTORY_JOB).execute_in_process(
            instance=instance, run_config={}, raise_on_error=False
        )

    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    # Dagster wraps the check's error: InvalidParams is its cause.
    cause = failure.event_specific_data.error.cause
    assert cause.cls_name == "InvalidParams"
    assert "PGVECTOR_GLOBAL_BACKUP_MAX_AGE_HOURS is a number of hours above 0, not 'a day'." in cause.message
