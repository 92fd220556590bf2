"""The production shape end to end: a webserver and a dagster-daemon whose Dagster instance lives in
PostgreSQL (deploy/postgres/dagster.yaml, a database of its own on the embedded server), with runs queued
by the daemon. A schedule tick and a sensor tick start backups; the CLI starts restores and truncates; two
runs on one database never overlap.
"""

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2
import pytest

from pgvector_pipeline.contract import (
    BACKUP_SCHEDULE,
    FRESHNESS_SCHEDULE,
    RESTORE_JOB,
    RETENTION_SCHEDULE,
    TASK_SENSOR,
    TRUNCATE_JOB,
    database_tags,
    restore_run_config,
)
from pgvector_pipeline.entry_points.client import VectorBackupClient
from pgvector_pipeline.store.local import list_backup_sets
from pgvector_pipeline.testing.db import execute, query
from pgvector_pipeline.testing.embedded import ensure_database
from pgvector_pipeline.testing.langchain_tables import create_langchain_tables, insert_sample_store
from pgvector_pipeline.testing.webserver import REPO_ROOT, running_webserver
from tests.helpers import resources_config, set_directory

TICK_TIMEOUT_S = 240


def one_shot_cron() -> tuple[str, datetime]:
    """A cron that fires once, at a minute far enough ahead for the daemon to be up (and the tick time)."""
    tick = (datetime.now(UTC) + timedelta(seconds=45)).replace(second=0, microsecond=0) + timedelta(minutes=1)
    return f"{tick.minute} {tick.hour} {tick.day} {tick.month} *", tick


def cli(port: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pgvector_pipeline.entry_points.cli", "--port", str(port), *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO_ROOT,
    )


def wait_until(condition, timeout_s: float, what: str, logs: Path):
    deadline = time.monotonic() + timeout_s
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen in {timeout_s} s; daemon log:\n{logs.read_text()[-5000:]}")
        time.sleep(2)
    return result


@pytest.fixture(scope="module")
def deployment(pg_server, tmp_path_factory):
    work = tmp_path_factory.mktemp("deployment")
    root = work / "backups"
    root.mkdir()
    store = ensure_database(pg_server, "deployment_store")
    execute(store, lambda cur: create_langchain_tables(cur, "public"))
    execute(store, lambda cur: insert_sample_store(cur, "public", collections=2, embeddings_per_collection=100))
    instance_db = ensure_database(pg_server, "deployment_dagster")
    cron, tick = one_shot_cron()
    env = {
        "PGVECTOR_DSN": store,
        "PGVECTOR_BACKUP_ROOT": str(root),
        # SQLAlchemy 2.1 reads a plain postgresql:// URL as psycopg 3, which is not installed: name the driver.
        "DAGSTER_POSTGRES_URL": instance_db.replace("postgresql://", "postgresql+psycopg2://", 1),
        # Every schedule ticks once, at the same minute.
        "PGVECTOR_BACKUP_CRON": cron,
        "PGVECTOR_RETENTION_CRON": cron,
        "PGVECTOR_FRESHNESS_CRON": cron,
        "PGVECTOR_RETENTION_KEEP_NEWEST": "5",
        # The runs' set checks parse vectors in spawned worker processes, as a large set's do: here under
        # `python -m dagster api execute_run`, as in production.
        "PGVECTOR_CHECK_WORKERS": "2",
        # Lock waits of every run (10 s by default): a truncate waits here as long as a test holds its table.
        "PGVECTOR_LOCK_TIMEOUT_S": "300",
    }
    with running_webserver(work, env, REPO_ROOT / "deploy" / "postgres" / "dagster.yaml", daemon=True) as port:
        yield {"port": port, "root": root, "store": store, "instance_db": instance_db, "tick": tick, "work": work}


def test_schedule_and_task_sensor_ticks_back_up_under_the_daemon(deployment):
    port, root = deployment["port"], deployment["root"]
    (root / "task_train_1").mkdir()  # a training task about to run

    for name in (BACKUP_SCHEDULE, RETENTION_SCHEDULE, TASK_SENSOR):  # the freshness schedule is on already
        started = cli(port, "start", name)
        assert started.returncode == 0, started.stderr
        assert json.loads(started.stdout) == {"name": name, "status": "RUNNING"}

    def finished_runs_by_launcher():
        return query(
            deployment["instance_db"],
            "SELECT t.value, r.pipeline_name, r.status FROM run_tags t JOIN runs r ON r.run_id = t.run_id "
            "WHERE t.key IN ('dagster/schedule_name', 'dagster/sensor_name') AND t.value <> %s "
            "AND r.status IN ('SUCCESS', 'FAILURE', 'CANCELED') ORDER BY t.value",
            ("backup_discovery_sensor",),
        )

    # The runs, their tags and events are in the PostgreSQL instance database, not in files.
    finished = wait_until(
        lambda: len(runs := finished_runs_by_launcher()) == 4 and runs,
        TICK_TIMEOUT_S,
        "a tick of each schedule and of the task sensor",
        deployment["work"] / "daemon.log",
    )
    assert finished == [
        (BACKUP_SCHEDULE, "request_vector_backup_job", "SUCCESS"),
        (TASK_SENSOR, "request_vector_backup_job", "SUCCESS"),
        (FRESHNESS_SCHEDULE, "vector_inventory_job", "SUCCESS"),
        (RETENTION_SCHEDULE, "vector_retention_job", "SUCCESS"),
    ]
    checks = query(deployment["instance_db"], "SELECT check_name, execution_status FROM asset_check_executions")
    assert ("recent_global_backup", "SUCCEEDED") in checks or ("recent_global_backup", "FAILED") in checks
    # Both backups' embeddings checks passed from what their snapshots counted: no vector parsed again.
    parsed = query(
        deployment["instance_db"],
        "SELECT e.execution_status, (e.evaluation_event::json #>> '{dagster_event,event_specific_data,metadata,"
        "parsed_by,text}') FROM asset_check_executions e "
        "WHERE e.check_name = 'embeddings_parse' AND e.asset_key LIKE '%%langchain_pg_embedding_backup%%'",
    )
    counted = "not parsed again: the server printed each from a value pgvector accepted"
    assert parsed == [("SUCCEEDED", counted), ("SUCCEEDED", counted)], parsed
    sets = {s.task: s for s in list_backup_sets(root)}
    assert {task: s.status for task, s in sets.items()} == {"global": "complete", "task_train_1": "complete"}
    assert sets["global"].rows("langchain_pg_embedding") == 200
    assert set_directory(sets["task_train_1"]) == root / "task_train_1" / "vector_bak"
    # The schedule's set carries the time of its tick (the run stamps its set when it starts).
    stamped = datetime.strptime(sets["global"].timestamp, "%Y%m%d_%H%M%S").replace(tzinfo=UTC)
    assert timedelta(0) <= stamped - deployment["tick"] < timedelta(seconds=120)

    listed = cli(port, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {json.loads(line)["task_id"] for line in listed.stdout.splitlines()} == {"global", "task_train_1"}
    # For people: a table, newest first, with each set's age.
    store, header, *table = cli(port, "list").stdout.splitlines()
    assert store == f"Backup store: {root}"
    assert header.split() == ["TASK", "TAKEN", "AGE", "STATUS", "SIZE", "TOOK", "STORED", "AS", "SOURCE", "CONTENTS"]
    assert sorted(line.split()[0] for line in table) == ["global", "task_train_1"]
    assert all(" ago " in line or "just now" in line for line in table) and all("complete" in line for line in table)

    # Retention from the CLI waits and says what it would delete: each location's newest complete set always stays.
    dry = cli(port, "retention", "--max-age-days", "0.00001")
    assert dry.returncode == 0, dry.stderr
    said = [line.split(" INFO ", 1)[1] for line in dry.stderr.splitlines() if " INFO " in line]
    assert said[0].startswith(f"Retention in {root}: keep sets younger than 1e-05 days") and "(dry run)" in said[0]
    assert "Would delete 0 sets, 0 B." in said, dry.stderr
    assert {s.task for s in list_backup_sets(root)} == {"global", "task_train_1"}

    # And off again: one schedule and the sensor.
    for name in (BACKUP_SCHEDULE, TASK_SENSOR):
        stopped = cli(port, "stop", name)
        assert stopped.returncode == 0, stopped.stderr
        assert json.loads(stopped.stdout) == {"name": name, "status": "STOPPED"}
    states = dict(query(deployment["instance_db"], "SELECT selector_id, status FROM instigators"))
    assert sorted(states.values()).count("STOPPED") >= 2, states


def test_runs_on_one_database_never_overlap_and_restore_through_the_cli(deployment):
    port, store = deployment["port"], deployment["store"]
    [global_set] = list_backup_sets(deployment["root"], global_only=True)
    client = VectorBackupClient("127.0.0.1", port)
    blocker = psycopg2.connect(store)
    try:
        with blocker.cursor() as cur:
            # Holds the truncate inside the database, so it stays STARTED as long as the test wants.
            cur.execute("LOCK TABLE langchain_pg_embedding IN ACCESS EXCLUSIVE MODE")
        # Its lock wait is bounded (PGVECTOR_LOCK_TIMEOUT_S of the deployment: 300 s, long enough for this test).
        truncate_id = client.launch_job(TRUNCATE_JOB, resources_config(), database_tags())
        wait_until(
            lambda: client.run_status(truncate_id).status == "STARTED",
            120,
            "the truncate start",
            deployment["work"] / "daemon.log",
        )
        launched = cli(port, "restore", "--timestamp", global_set.timestamp, "--truncate")
        assert launched.returncode == 0, launched.stderr
        restore_id = json.loads(launched.stdout)["run_id"]
        for _ in range(10):  # ten seconds in which the queue could have started it
            assert client.run_status(restore_id).status == "QUEUED"
            assert client.run_status(truncate_id).status == "STARTED"
            time.sleep(1)
    finally:
        blocker.rollback()
        blocker.close()

    assert client.wait_for_run(truncate_id, timeout_s=120).status == "SUCCESS"
    waited = cli(port, "status", restore_id, "--wait", "--timeout", "180")
    assert waited.returncode == 0, waited.stderr
    status = json.loads(waited.stdout)
    assert status["status"] == "SUCCESS" and status["job_name"] == "vector_restore_job"
    # The truncate ran first, then the restore brought the set's 200 rows back.
    assert query(store, "SELECT count(*) FROM langchain_pg_embedding")[0][0] == 200


def test_a_failed_run_reports_its_error_type_through_the_cli(deployment):
    # The command refuses a set the inventory does not list before launching anything (exit 2) ...
    refused = cli(deployment["port"], "restore", "--timestamp", "20200101_000000", "--wait", "--timeout", "180")
    assert refused.returncode == 2 and "No set 20200101_000000 in " in refused.stderr
    # ... so a run that fails for want of its set is one launched without that check (a stale inventory, another
    # tool): the command following it reports its failure.
    run_config = restore_run_config(None, "20200101_000000")
    run_id = VectorBackupClient("127.0.0.1", deployment["port"]).launch_job(RESTORE_JOB, run_config, database_tags())
    failed = cli(deployment["port"], "status", run_id, "--wait", "--timeout", "180")
    assert failed.returncode == 1
    status = json.loads(failed.stdout)
    assert status["status"] == "FAILURE" and status["error_type"] == "RESOURCE_NOT_FOUND"
    assert status["can_retry"] is False and "20200101_000000" in status["error_message"]
    # Cron mails what a job writes to stderr: the failure is there too, in one line, after the run's progress, with
    # the command that lists the sets where the run's message names the Dagster asset.
    assert "List the sets (vector_backup_inventory)" in status["error_message"]
    assert failed.stderr.splitlines()[-1] == (
        f"error: run {status['run_id']} FAILURE: RESOURCE_NOT_FOUND: "
        + status["error_message"].replace("(vector_backup_inventory)", "(pgvector-pipeline list)")
    )
