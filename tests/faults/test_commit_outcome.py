"""A connection that drops while COMMIT is in flight: the outcome is looked up, never assumed."""

import pytest

from pgvector_pipeline.contract import RestoreFlags
from pgvector_pipeline.errors import CommitOutcomeUnknown, ErrorType
from pgvector_pipeline.names import BACKUP_TABLES, EMBEDDING_TABLE
from pgvector_pipeline.operations.backup import BackupOptions, back_up_database
from pgvector_pipeline.operations.restore import restore_backup_set
from pgvector_pipeline.postgres import commit
from pgvector_pipeline.postgres.maintenance import truncate_tables_now
from pgvector_pipeline.store.layout import GLOBAL_TASK_KEY
from pgvector_pipeline.store.local import LocalBackupStore, locate_backup_set
from pgvector_pipeline.testing.db import execute, query
from pgvector_pipeline.testing.langchain_tables import insert_sample_store
from tests.helpers import RecordingLog

TS = "20261124_101500"


def embedding_rows(dsn: str) -> int:
    return query(dsn, "SELECT count(*) FROM langchain_pg_embedding")[0][0]


@pytest.fixture
def sample(store_db):
    execute(
        store_db,
        lambda cur: insert_sample_store(cur, "public", collections=2, embeddings_per_collection=50, dimension=8),
    )
    return store_db


def truncate_after_backup(proxy, root, log):
    return back_up_database(
        proxy.dsn,
        "public",
        LocalBackupStore(root),
        GLOBAL_TASK_KEY,
        TS,
        BackupOptions(truncate_after_backup=True),
        log=log,
    )


def restore_with_truncate(proxy, root, log):
    # The set is made without the proxy; only the restore's COMMIT is cut.
    proxy.drop_next_commit, armed = False, proxy.drop_next_commit
    back_up_database(proxy.dsn, "public", LocalBackupStore(root), GLOBAL_TASK_KEY, TS)
    execute(proxy.dsn, lambda cur: cur.execute("DELETE FROM langchain_pg_embedding WHERE id LIKE '%%-1_'"))
    proxy.drop_next_commit = armed
    backup_set = locate_backup_set(root, timestamp=TS)
    return restore_backup_set(proxy.dsn, "public", backup_set, RestoreFlags(truncate_before_restore=True), log=log)


def plain_truncate(proxy, root, log):
    return truncate_tables_now(proxy.dsn, "public", list(BACKUP_TABLES), warn=log.warning)


@pytest.mark.parametrize(
    "operation, rows_after", [(truncate_after_backup, 0), (restore_with_truncate, 100), (plain_truncate, 0)]
)
def test_lost_commit_is_confirmed_by_a_new_session(sample, proxy, backup_root, operation, rows_after):
    log = RecordingLog()
    proxy.drop_next_commit = True

    operation(proxy, backup_root, log)

    assert proxy.dropped == 1
    assert embedding_rows(sample) == rows_after
    [warning] = [w for w in log.warnings if "dropped while committing" in w]
    assert "A new session confirmed that the server committed transaction" in warning


@pytest.mark.parametrize(
    "operation, rows_after", [(truncate_after_backup, 0), (restore_with_truncate, 100), (plain_truncate, 0)]
)
def test_lost_commit_that_cannot_be_looked_up_is_reported_unknown(
    sample, proxy, backup_root, monkeypatch, operation, rows_after
):
    monkeypatch.setattr(commit, "OUTCOME_RETRY_DELAY_S", 0.05)
    proxy.drop_next_commit = True
    proxy.refuse_after_drop = True

    with pytest.raises(CommitOutcomeUnknown) as failure:
        operation(proxy, backup_root, RecordingLog())

    error = failure.value
    assert error.error_type == ErrorType.COMMIT_OUTCOME_UNKNOWN and not error.can_retry
    assert "is unknown" in error.message and "pg_xact_status" in error.message
    assert "unchanged" not in error.message and "Nothing was committed" not in error.message
    # What really happened: the server did commit.
    assert embedding_rows(sample) == rows_after
    if operation is truncate_after_backup:
        assert error.message.startswith("The backup set was written and verified.")
        assert locate_backup_set(backup_root, timestamp=TS).complete


def test_lost_commit_of_a_restore_names_what_to_check(sample, proxy, backup_root, monkeypatch):
    monkeypatch.setattr(commit, "OUTCOME_RETRY_DELAY_S", 0.05)
    proxy.drop_next_commit = True
    proxy.refuse_after_drop = True
    with pytest.raises(CommitOutcomeUnknown, match=f"Compare the row counts of .*{EMBEDDING_TABLE}"):
        restore_with_truncate(proxy, backup_root, RecordingLog())
