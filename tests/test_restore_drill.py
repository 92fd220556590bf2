"""The restore drill and `verify` (issue 24): a set is restored into a scratch schema of the database, compared by
content (and with the live tables), and dropped; the live tables are only read. A damaged set fails the drill; a
live store that changed since the set is reported, table by table."""

import json
import subprocess
import sys

import dagster as dg
import pytest

from pgvector_pipeline.contract import (
    BACKUP_SET_TAG,
    BYTES_TAG,
    DRILL_JOB,
    DRILL_SCHEDULE,
    ROWS_TAG,
    drill_run_config,
)
from pgvector_pipeline.errors import DataError
from pgvector_pipeline.names import EMBEDDING_TABLE
from pgvector_pipeline.operations.backup import back_up_database
from pgvector_pipeline.operations.drill import restore_drill
from pgvector_pipeline.store.local import LocalBackupStore
from pgvector_pipeline.store.roots import BACKUP_ROOT_ENV
from pgvector_pipeline.testing.db import execute, query
from pgvector_pipeline.testing.langchain_tables import fill_sample_store
from tests.catalog_fingerprint import contents
from tests.helpers import DSN_ENV, PLAIN_CSV, RecordingLog, direct, flip_a_digit, resources_config, set_files

SCRATCH = "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'pgvector_drill_%%'"


@pytest.fixture
def store_and_set(store_db, backup_root):
    fill_sample_store(store_db, collections=2, embeddings_per_collection=25, dimension=8)
    result = back_up_database(store_db, "public", LocalBackupStore(backup_root), "global", None, PLAIN_CSV)
    return store_db, LocalBackupStore(backup_root).locate(timestamp=result.timestamp)


def test_a_drill_restores_compares_and_drops_leaving_the_live_tables_alone(store_and_set):
    dsn, backup_set = store_and_set
    before = contents(dsn)
    execute(dsn, lambda cur: cur.execute("CREATE SCHEMA pgvector_drill_20200101_000000"))  # a killed drill's
    log = RecordingLog()

    result = restore_drill(dsn, "public", backup_set, True, log)

    assert [(t.table, t.set_rows, t.restored_rows, t.live_equal) for t in result.tables] == [
        ("langchain_pg_collection", 2, 2, True),
        ("langchain_pg_embedding", 50, 50, True),
    ]
    assert result.passed and result.restore_s > 0 and 0 <= result.data_age_h < 1
    assert "Dropped pgvector_drill_20200101_000000, left by a drill that died." in log.infos
    assert query(dsn, SCRATCH) == []
    assert contents(dsn) == before


def test_a_damaged_set_fails_the_drill_and_leaves_no_scratch_schema(store_and_set):
    dsn, backup_set = store_and_set
    path = set_files(backup_set)[EMBEDDING_TABLE]
    path.write_bytes(flip_a_digit(path.read_bytes()))

    with pytest.raises(DataError, match="does not match its manifest"):
        restore_drill(dsn, "public", backup_set, False, RecordingLog())

    assert query(dsn, SCRATCH) == []


def test_verify_from_the_shell_says_whether_the_live_tables_are_the_sets(store_and_set, backup_root):
    dsn, backup_set = store_and_set
    env = {DSN_ENV: dsn, BACKUP_ROOT_ENV: str(backup_root)}

    same = direct("verify", env=env)
    assert same.returncode == 0, same.stderr
    found = json.loads(same.stdout)
    assert (found["command"], found["backup_set"], found["live_equal"]) == (
        "verify",
        f"global/{backup_set.timestamp}",
        True,
    )

    execute(dsn, lambda cur: cur.execute(f"UPDATE {EMBEDDING_TABLE} SET document = 'changed' WHERE id LIKE '%%-3'"))
    changed = direct("verify", "--timestamp", backup_set.timestamp, env=env)
    assert changed.returncode == 1
    found = json.loads(changed.stdout)
    assert found["live_equal"] is False
    assert [(t["table"], t["live_equal"]) for t in found["tables"]] == [
        ("langchain_pg_collection", True),
        ("langchain_pg_embedding", False),
    ]
    assert changed.stderr.splitlines()[-1] == f"error: the live tables differ from set global/{backup_set.timestamp}."
    assert query(dsn, SCRATCH) == []


def test_the_drill_job_reports_the_restores_time_and_the_datas_age(store_and_set, instance, monkeypatch):
    from pgvector_pipeline.definitions import defs

    dsn, backup_set = store_and_set
    monkeypatch.setenv(DSN_ENV, dsn)

    result = defs.get_job_def(DRILL_JOB).execute_in_process(
        run_config={**drill_run_config(), **resources_config()}, instance=instance
    )

    assert result.success
    [output] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = output.event_specific_data.metadata
    assert metadata["backup_set"].value == f"global/{backup_set.timestamp}"
    assert metadata["restore_s"].value > 0 and metadata["data_age_hours"].value < 1
    assert metadata["live_equal"].value == "not compared"
    assert [r.data["restored_rows"] for r in metadata["tables"].value.records] == [2, 50]
    # What the CLI's verify prints: the set, the rows restored, the set's bytes.
    tags = instance.get_run_by_id(result.run_id).tags
    assert (tags[BACKUP_SET_TAG], tags[ROWS_TAG]) == (f"global/{backup_set.timestamp}", "52")
    assert int(tags[BYTES_TAG]) == backup_set.total_bytes
    schedule = defs.resolve_schedule_def(DRILL_SCHEDULE)
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED


def test_verify_through_the_webserver_gives_the_result_and_exit_code_direct_gives(store_and_set, backup_root, tmp_path):
    """Both paths render one result: a changed live row makes `verify` exit 1 with live_equal false and the same
    table comparisons, over GraphQL as with --direct. (DefaultRunCoordinator: the run starts without a daemon.)"""
    from pgvector_pipeline.testing.webserver import running_webserver

    dsn, backup_set = store_and_set
    env = {DSN_ENV: dsn, BACKUP_ROOT_ENV: str(backup_root)}
    execute(dsn, lambda cur: cur.execute(f"UPDATE {EMBEDDING_TABLE} SET document = 'changed' WHERE id LIKE '%%-3'"))
    direct_verify = direct("verify", env=env)

    with running_webserver(tmp_path, env) as port:
        over_graphql = subprocess.run(
            [
                sys.executable,
                "-m",
                "pgvector_pipeline.entry_points.cli",
                "--port",
                str(port),
                "verify",
                "--timeout",
                "300",
            ],
            capture_output=True,
            text=True,
            timeout=400,
        )

    assert (over_graphql.returncode, direct_verify.returncode) == (1, 1), over_graphql.stderr
    through, here = json.loads(over_graphql.stdout), json.loads(direct_verify.stdout)
    assert through["status"] == "SUCCESS" and through["live_equal"] is False
    shared = ("backup_set", "rows", "bytes", "live_equal", "tables")
    assert {k: through[k] for k in shared} == {k: here[k] for k in shared}
    assert [(t["table"], t["live_equal"]) for t in through["tables"]] == [
        ("langchain_pg_collection", True),
        ("langchain_pg_embedding", False),
    ]
    differ = f"error: the live tables differ from set global/{backup_set.timestamp}."
    assert over_graphql.stderr.splitlines()[-1] == direct_verify.stderr.splitlines()[-1] == differ
    assert query(dsn, SCRATCH) == []
