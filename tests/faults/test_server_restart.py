"""A database server that restarts under a restore (a crash: `pg_ctl restart -m immediate`, no shutdown checkpoint)
at each stage of it, in place and swapped: the restore fails with a retryable error, and after crash recovery the
live tables, their rows, indexes and everything else the catalog says of them are as they were, with no new table
left behind. The shared test server restarts: nothing else uses it while a test runs."""

import pytest

from pgvector_pipeline.contract import RestoreFlags
from pgvector_pipeline.errors import DatabaseError
from pgvector_pipeline.operations.backup import back_up_database
from pgvector_pipeline.operations.restore import restore_backup_set
from pgvector_pipeline.store.local import LocalBackupStore
from pgvector_pipeline.testing.db import query
from pgvector_pipeline.testing.embedded import restart_embedded_server
from tests.catalog_fingerprint import contents, dress, fingerprint
from tests.helpers import PLAIN_CSV, RecordingLog

IN_PLACE = RestoreFlags(truncate_before_restore=True, in_place=True)
SWAP = RestoreFlags(truncate_before_restore=True)


@pytest.mark.parametrize(
    ("flags", "moment"),
    [
        (IN_PLACE, "Dropped "),
        (IN_PLACE, "Building index "),
        (SWAP, "Loading into new tables beside "),
        (SWAP, "langchain_pg_embedding: built ix_embedding_hnsw on the new table."),
        (SWAP, "Swapped the new "),
    ],
    ids=[
        "in place, after the truncate",
        "in place, building indexes",
        "swap, loading",
        "swap, building the new tables' indexes",
        "swap, swapped but not committed",
    ],
)
def test_a_server_restarted_mid_restore_leaves_the_live_tables(pg_server, store_db, backup_root, flags, moment):
    dsn = dress(store_db)
    result = back_up_database(dsn, "public", LocalBackupStore(backup_root), "global", None, PLAIN_CSV)
    backup_set = LocalBackupStore(backup_root).locate(timestamp=result.timestamp)
    rows, before = contents(dsn), fingerprint(dsn)
    restarted = []

    class RestartAt(RecordingLog):
        def info(self, msg: str) -> None:
            super().info(msg)
            if msg.startswith(moment) and not restarted:
                restarted.append(msg)
                restart_embedded_server(pg_server)

    with pytest.raises(DatabaseError) as lost:
        restore_backup_set(dsn, "public", backup_set, flags, log=RestartAt())

    assert restarted, "the restore never reached the moment"
    assert lost.value.can_retry
    assert (contents(dsn), fingerprint(dsn)) == (rows, before)
    assert query(dsn, "SELECT count(*) FROM pg_class WHERE relname LIKE 'pgvector_%%'") == [(0,)]
