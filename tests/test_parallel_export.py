"""A large table exported by several sessions on one snapshot: same bytes, same rows, safe failure."""

import threading
import time

import pytest
from psycopg2.extensions import make_dsn

from pgvector_pipeline.errors import DatabaseError
from pgvector_pipeline.names import EMBEDDING_TABLE
from pgvector_pipeline.operations.backup import BackupOptions, back_up_database
from pgvector_pipeline.postgres import ranges
from pgvector_pipeline.store.layout import GLOBAL_TASK_KEY
from pgvector_pipeline.store.local import LocalBackupStore
from pgvector_pipeline.testing.db import app_connection, execute, query
from pgvector_pipeline.testing.langchain_tables import insert_sample_store
from tests.helpers import RecordingLog, csv_of, read_csv_rows, recent_timestamps

ROWS = 3000


@pytest.fixture
def store(store_db):
    execute(
        store_db,
        lambda cur: insert_sample_store(
            cur, "public", collections=2, embeddings_per_collection=ROWS // 2, dimension=32
        ),
    )
    return store_db


def parallel_lines(log: RecordingLog) -> list[str]:
    return [line for line in log.infos if "sessions on this snapshot" in line or "this session alone" in line]


def test_ranges_write_the_bytes_one_session_writes(store, backup_root, small_export_ranges):
    first, second = recent_timestamps(2)
    log = RecordingLog()
    alone = back_up_database(
        store, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, first, BackupOptions(export_sessions=1)
    )
    shared = back_up_database(
        store,
        "public",
        LocalBackupStore(backup_root),
        GLOBAL_TASK_KEY,
        second,
        BackupOptions(export_sessions=3),
        log=log,
    )

    [line] = [line for line in parallel_lines(log) if line.startswith(EMBEDDING_TABLE)]
    assert line.startswith(f"{EMBEDDING_TABLE}: exported by 3 sessions on this snapshot, ")
    assert int(line.split(", ")[1].split()[0]) > 100  # ranges
    for table in (alone.table(EMBEDDING_TABLE), shared.table(EMBEDDING_TABLE)):
        assert table.rows == ROWS
    assert csv_of(shared.table(EMBEDDING_TABLE).path) == csv_of(alone.table(EMBEDDING_TABLE).path)
    assert shared.table(EMBEDDING_TABLE).sha256 == alone.table(EMBEDDING_TABLE).sha256


def test_sessions_read_the_backup_snapshot_not_later_writes(store, backup_root, small_export_ranges):
    before = {row[0] for row in query(store, "SELECT id FROM langchain_pg_embedding")}

    class ChangeRowsWhenExportStarts(RecordingLog):
        def info(self, msg: str) -> None:
            super().info(msg)
            if msg.startswith(f"Exporting {EMBEDDING_TABLE}"):
                # Committed after the backup's snapshot, before its other sessions start.
                execute(
                    store,
                    lambda cur: (
                        cur.execute(
                            "DELETE FROM langchain_pg_embedding WHERE id IN (SELECT id FROM "
                            "langchain_pg_embedding ORDER BY id LIMIT 500)"
                        ),
                        cur.execute("UPDATE langchain_pg_embedding SET document = 'changed later'"),
                    ),
                )

    log = ChangeRowsWhenExportStarts()
    result = back_up_database(
        store, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, recent_timestamps(1)[0], log=log
    )

    assert any("exported by 2 sessions" in line for line in parallel_lines(log))
    rows = read_csv_rows(result.table(EMBEDDING_TABLE).path)
    assert result.table(EMBEDDING_TABLE).rows == len(rows) == ROWS
    assert {row["id"] for row in rows} == before
    assert not any(row["document"] == "changed later" for row in rows)
    assert query(store, "SELECT count(*) FROM langchain_pg_embedding") == [(ROWS - 500,)]


def test_a_killed_export_session_fails_the_backup_and_leaves_no_set(
    store, backup_root, small_export_ranges, monkeypatch
):
    copy = ranges.SnapshotSession.copy
    calls = []

    def copy_then_die_at_the_tenth(session, statement, sink, block_range):
        calls.append(block_range)
        if len(calls) == 10:
            # This session's server process dies as its range starts.
            execute(
                store, lambda cur: cur.execute("SELECT pg_terminate_backend(%s)", (session.conn.get_backend_pid(),))
            )
        return copy(session, statement, sink, block_range)

    monkeypatch.setattr(ranges.SnapshotSession, "copy", copy_then_die_at_the_tenth)
    with pytest.raises(DatabaseError) as lost:
        back_up_database(store, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, recent_timestamps(1)[0])

    assert lost.value.can_retry is True
    assert f"while exporting {EMBEDDING_TABLE} (heap blocks from {calls[9].first}, in a second session)" in (
        lost.value.message
    )
    assert sorted(p.name for p in (backup_root / "vector_bak").iterdir()) == ["vector_backup_log.txt"]
    # Every session of the backup is gone: nothing holds a lock or a snapshot.
    sessions = (
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgvector_pipeline' AND pid <> pg_backend_pid()"
    )
    assert query(store, sessions) == [(0,)]


def test_a_waiting_exclusive_lock_makes_the_export_use_one_session(store, backup_root, small_export_ranges):
    # ALTER TABLE waits for the backup's lock; a second session queueing behind it would wait for the
    # backup, which waits for that session: a hang PostgreSQL cannot detect. The backup goes on alone.
    waiter = app_connection(store)
    altered: dict = {}

    def alter() -> None:
        started = time.monotonic()
        with waiter.cursor() as cur:
            cur.execute("ALTER TABLE langchain_pg_embedding ADD COLUMN note text")
        waiter.commit()
        altered["after_s"] = time.monotonic() - started

    class AlterWhenExportStarts(RecordingLog):
        def info(self, msg: str) -> None:
            super().info(msg)
            if msg.startswith(f"Exporting {EMBEDDING_TABLE}"):
                threading.Thread(target=alter, daemon=True).start()
                deadline = time.monotonic() + 10
                while not query(store, "SELECT 1 FROM pg_locks WHERE NOT granted AND mode = 'AccessExclusiveLock'"):
                    assert time.monotonic() < deadline, "ALTER TABLE never queued for its lock"
                    time.sleep(0.02)

    log = AlterWhenExportStarts()
    outcome: dict = {}
    backup = threading.Thread(
        target=lambda: outcome.update(
            result=back_up_database(
                store, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, recent_timestamps(1)[0], log=log
            )
        ),
        daemon=True,
    )
    backup.start()
    backup.join(timeout=60)

    assert not backup.is_alive(), "the backup hung behind the waiting ALTER TABLE"
    assert outcome["result"].table(EMBEDDING_TABLE).rows == ROWS
    [line] = [line for line in parallel_lines(log) if line.startswith(EMBEDDING_TABLE)]
    assert line.startswith(
        f"{EMBEDDING_TABLE}: exported by this session alone: no further session could read it (a lock request "
        f"waiting on {EMBEDDING_TABLE} (an ALTER TABLE or TRUNCATE queued behind this backup) would make it queue: "
    )
    deadline = time.monotonic() + 10
    while "after_s" not in altered and time.monotonic() < deadline:
        time.sleep(0.05)
    waiter.close()
    assert "after_s" in altered  # ALTER TABLE ran once the backup's transaction ended


def test_no_free_connection_slot_makes_the_export_use_one_session(store, backup_root, small_export_ranges):
    # A role allowed one connection: the backup's own session takes it.
    execute(
        store,
        lambda cur: (
            cur.execute("DROP ROLE IF EXISTS one_connection"),
            cur.execute("CREATE ROLE one_connection LOGIN CONNECTION LIMIT 1"),
            cur.execute("GRANT SELECT ON langchain_pg_collection, langchain_pg_embedding TO one_connection"),
        ),
    )
    log = RecordingLog()
    dsn = make_dsn(store, user="one_connection")
    result = back_up_database(
        dsn, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, recent_timestamps(1)[0], log=log
    )

    assert result.table(EMBEDDING_TABLE).rows == ROWS
    [line] = [line for line in parallel_lines(log) if line.startswith(EMBEDDING_TABLE)]
    assert line.startswith(f"{EMBEDDING_TABLE}: exported by this session alone: no further session could read it (")
    assert 'too many connections for role "one_connection"' in line
