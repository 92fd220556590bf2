"""The project's sessions set their own timeouts: a role's settings cannot end a backup or mask its errors."""

import pytest
from psycopg2 import sql

from pgvector_pipeline.errors import DataError
from pgvector_pipeline.names import BACKUP_TABLES, EMBEDDING_TABLE
from pgvector_pipeline.operations.backup import back_up_database
from pgvector_pipeline.postgres.connection import connect
from pgvector_pipeline.postgres.snapshot import Snapshot
from pgvector_pipeline.store.layout import GLOBAL_TASK_KEY
from pgvector_pipeline.store.local import LocalBackupStore, list_backup_sets
from pgvector_pipeline.testing.db import execute
from pgvector_pipeline.testing.langchain_tables import fill_sample_store
from tests.helpers import RecordingLog

ROWS = 20_000


@pytest.fixture
def large_store(store_db):
    fill_sample_store(store_db, collections=2, embeddings_per_collection=ROWS // 2, dimension=32)
    return store_db


def test_role_timeouts_do_not_end_a_parallel_backup(
    large_store, make_role, admin_dsn, backup_root, small_export_ranges
):
    hurried = make_role("SELECT")
    role = hurried.split("user=")[1].split()[0]
    for setting in ("idle_in_transaction_session_timeout", "statement_timeout"):
        execute(
            admin_dsn,
            lambda cur, s=setting: cur.execute(
                sql.SQL("ALTER ROLE {} SET {} = '100ms'").format(sql.Identifier(role), sql.Identifier(s))
            ),
        )
    log = RecordingLog()

    result = back_up_database(
        hurried, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, "20261125_091500", log=log
    )

    assert any("sessions on this snapshot" in line for line in log.infos), log.infos
    assert result.table(EMBEDDING_TABLE).rows == ROWS
    assert [s.status for s in list_backup_sets(backup_root)] == ["complete"]


def test_cleanup_of_a_dead_session_never_replaces_the_error(store_db, admin_dsn):
    conn = connect(store_db)
    try:
        with pytest.raises(DataError, match="the error that ended the block"):
            with Snapshot(conn, "public", BACKUP_TABLES, dsn=store_db) as snapshot:
                snapshot.count(EMBEDDING_TABLE)
                execute(
                    admin_dsn, lambda cur: cur.execute("SELECT pg_terminate_backend(%s)", (conn.get_backend_pid(),))
                )
                raise DataError("the error that ended the block")
    finally:
        conn.close()
