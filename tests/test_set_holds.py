"""A set being read is held: retention skips it, and the read finishes."""

import threading
import time

from pgvector_pipeline.contract import RestoreFlags
from pgvector_pipeline.names import LANGCHAIN_POSTGRES
from pgvector_pipeline.operations.backup import back_up_database
from pgvector_pipeline.operations.restore import restore_backup_set
from pgvector_pipeline.store.layout import GLOBAL_TASK_KEY
from pgvector_pipeline.store.local import LocalBackupStore, list_backup_sets, locate_backup_set
from pgvector_pipeline.testing.db import app_connection, query
from tests.helpers import RecordingLog, retain_newest
from tests.stores import make_store

OLDER, NEWER = "20261125_170000", "20261125_170100"


def test_retention_skips_a_set_a_restore_is_reading(empty_db, backup_root):
    make_store(empty_db, LANGCHAIN_POSTGRES, dimension=3)
    back_up_database(empty_db, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, OLDER)
    back_up_database(empty_db, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, NEWER)
    older = locate_backup_set(backup_root, timestamp=OLDER)
    app = app_connection(empty_db, application_name="rag_app")
    with app.cursor() as cur:
        cur.execute("SELECT count(*) FROM langchain_pg_embedding")  # holds the restore at its lock for a while
    outcome: dict = {}

    def restore():
        try:
            outcome["result"] = restore_backup_set(
                empty_db, "public", older, RestoreFlags(truncate_before_restore=True), lock_timeout_s=30
            )
        except BaseException as exc:
            outcome["error"] = exc

    restoring = threading.Thread(target=restore, daemon=True)
    restoring.start()
    deadline = time.monotonic() + 20
    while not query(empty_db, "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'"):
        assert time.monotonic() < deadline, "the restore never waited for its lock"
        time.sleep(0.02)
    log = RecordingLog()

    result = retain_newest(backup_root, 1, log)
    app.close()
    restoring.join(30)

    assert [s.timestamp for s in result.skipped_busy] == [OLDER] and result.deleted == []
    assert any(f"Set {OLDER}" in w and "in use by a run now" in w for w in log.warnings), log.warnings
    assert "error" not in outcome, outcome.get("error")
    assert [s.timestamp for s in list_backup_sets(backup_root)] == [NEWER, OLDER]
