"""Every lock wait is bounded and names who is in the way; deadlocks and timeouts are said as such."""

import threading
import time

import pytest

from pgvector_pipeline.contract import RestoreFlags
from pgvector_pipeline.errors import DatabaseError
from pgvector_pipeline.operations.backup import BackupOptions, back_up_database
from pgvector_pipeline.operations.restore import restore_backup_set
from pgvector_pipeline.store.layout import GLOBAL_TASK_KEY
from pgvector_pipeline.store.local import LocalBackupStore, list_backup_sets, locate_backup_set
from pgvector_pipeline.testing.db import app_connection, execute, query
from pgvector_pipeline.testing.langchain_tables import fill_sample_store

TS = "20261125_100000"
ROWS = 200
SEARCH = "SELECT id FROM langchain_pg_embedding ORDER BY embedding <-> '[0,0,0,0,0,0,0,0]' LIMIT 3"
# Generous: the old code waited forever.
GIVE_UP_S = 30


@pytest.fixture
def store(store_db):
    fill_sample_store(store_db, collections=2, embeddings_per_collection=100, dimension=8)
    return store_db


@pytest.fixture
def idle_app_session(store):
    """An app session that searched and then sat idle in its transaction (it holds ACCESS SHARE)."""
    conn = app_connection(store, application_name="rag_app")
    with conn.cursor() as cur:
        cur.execute(SEARCH)
        cur.fetchall()
    yield conn
    conn.close()


def rows(dsn: str) -> int:
    return query(dsn, "SELECT count(*) FROM langchain_pg_embedding")[0][0]


def in_thread(work) -> dict:
    """Run `work()` on a thread, joined within GIVE_UP_S; what it returned or raised."""
    outcome: dict = {}

    def run():
        try:
            outcome["result"] = work()
        except BaseException as exc:  # handed to the test
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(GIVE_UP_S)
    assert not thread.is_alive(), f"still waiting after {GIVE_UP_S} s"
    return outcome


def longest_search_wait(dsn: str, stop: threading.Event, waits: list[float]) -> None:
    conn = app_connection(dsn, application_name="rag_search")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SET statement_timeout = '20s'")  # a search stuck behind a lock forever ends the test
            while not stop.is_set():
                started = time.monotonic()
                cur.execute(SEARCH)
                cur.fetchall()
                waits.append(time.monotonic() - started)
                time.sleep(0.02)
    finally:
        conn.close()


def test_truncate_after_backup_gives_up_on_an_idle_app_session_and_names_it(store, idle_app_session, backup_root):
    stop, waits = threading.Event(), []
    searcher = threading.Thread(target=longest_search_wait, args=(store, stop, waits), daemon=True)
    searcher.start()
    try:
        outcome = in_thread(
            lambda: back_up_database(
                store,
                "public",
                LocalBackupStore(backup_root),
                GLOBAL_TASK_KEY,
                TS,
                BackupOptions(truncate_after_backup=True, lock_timeout_s=1),
            )
        )
    finally:
        stop.set()
        searcher.join()

    error = outcome["error"]
    assert isinstance(error, DatabaseError) and not error.can_retry
    message = error.message
    assert "was NOT truncated" in message and "after waiting 1s (lock_timeout)" in message
    assert f"pid {idle_app_session.get_backend_pid()} (rag_app, idle in transaction" in message
    assert rows(store) == ROWS
    assert [s.status for s in list_backup_sets(backup_root)] == ["complete"]
    # Searches queue behind the waiting ACCESS EXCLUSIVE request, but only for about the lock timeout.
    assert max(waits) < 3, max(waits)


def test_a_truncating_restore_gives_up_on_an_idle_app_session(store, backup_root):
    back_up_database(store, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, TS)
    backup_set = locate_backup_set(backup_root, timestamp=TS)
    execute(store, lambda cur: cur.execute("DELETE FROM langchain_pg_embedding WHERE id LIKE '%1'"))
    remaining = rows(store)
    app = app_connection(store, application_name="rag_app")
    app_pid = app.get_backend_pid()
    try:
        with app.cursor() as cur:
            cur.execute(SEARCH)
        outcome = in_thread(
            lambda: restore_backup_set(
                store, "public", backup_set, RestoreFlags(truncate_before_restore=True), lock_timeout_s=1
            )
        )
    finally:
        app.close()
    message = outcome["error"].message
    assert f"pid {app_pid} (rag_app" in message and "Nothing was changed" in message
    assert rows(store) == remaining


def test_a_deadlock_with_an_app_transaction_is_reported_as_a_deadlock(store_db, backup_root, admin_dsn):
    fill_sample_store(store_db, collections=2, embeddings_per_collection=20_000, dimension=32)
    app = app_connection(store_db, application_name="rag_app")
    app_cur = app.cursor()
    # The session whose deadlock check runs first once the cycle exists is cancelled: let it be the backup's.
    app_cur.execute("SET deadlock_timeout = '60s'")
    app_cur.execute(
        "SELECT id FROM langchain_pg_embedding LIMIT 3"
    )  # the app reads first: ACCESS SHARE, beside the backup's SHARE lock
    outcome: dict = {}
    backup = threading.Thread(
        target=lambda: outcome.update(
            in_thread(
                lambda: back_up_database(
                    store_db,
                    "public",
                    LocalBackupStore(backup_root),
                    GLOBAL_TASK_KEY,
                    TS,
                    BackupOptions(truncate_after_backup=True, lock_timeout_s=20),
                )
            )
        ),
        daemon=True,
    )
    backup.start()
    deadline = time.monotonic() + 20
    while not query(
        admin_dsn,
        "SELECT 1 FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
        "WHERE a.application_name = 'pgvector_pipeline' AND l.mode = 'ShareLock' AND l.granted",
    ):
        assert time.monotonic() < deadline, "the backup never took its SHARE lock"
        time.sleep(0.01)
    # ... then writes while the backup exports: it waits for the backup's SHARE lock, and the backup's truncate
    # will wait for the app's ACCESS SHARE.
    app_cur.execute(
        "INSERT INTO langchain_pg_embedding (id, collection_id, document) "
        "SELECT 'app-row', uuid, 'x' FROM langchain_pg_collection LIMIT 1"
    )
    app.commit()
    app.close()
    backup.join(GIVE_UP_S)

    error = outcome["error"]
    assert isinstance(error, DatabaseError)
    assert "deadlock" in error.message and "connection failed" not in error.message
    assert "was NOT truncated" in error.message
    assert rows(store_db) == 40_001


def test_a_second_restore_that_slipped_past_the_queue_is_told_another_is_restoring(store, backup_root):
    back_up_database(store, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, TS)
    backup_set = locate_backup_set(backup_root, timestamp=TS)
    app = app_connection(store, application_name="rag_app")
    try:
        with app.cursor() as cur:
            cur.execute(SEARCH)  # holds the first restore at its truncate lock
        first = threading.Thread(
            target=lambda: in_thread(
                lambda: restore_backup_set(
                    store, "public", backup_set, RestoreFlags(truncate_before_restore=True), lock_timeout_s=5
                )
            ),
            daemon=True,
        )
        first.start()
        time.sleep(1)
        second = in_thread(
            lambda: restore_backup_set(
                store, "public", backup_set, RestoreFlags(truncate_before_restore=True), lock_timeout_s=5
            )
        )
    finally:
        app.close()
    first.join(GIVE_UP_S)
    message = second["error"].message
    assert "Another session is restoring into schema 'public'" in message and "Nothing was changed" in message
