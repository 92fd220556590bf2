"""truncate_after_backup with concurrent writers: every committed row ends up in the set or in the table."""

import threading
import time

import pytest

from pgvector_pipeline.operations.backup import BackupOptions, back_up_database
from pgvector_pipeline.store.layout import GLOBAL_TASK_KEY
from pgvector_pipeline.store.local import LocalBackupStore
from pgvector_pipeline.testing.db import app_connection, execute, query
from pgvector_pipeline.testing.langchain_tables import insert_sample_store
from tests.helpers import RecordingLog, read_csv_rows

TS = "20261124_110000"
INSERT = (
    "INSERT INTO langchain_pg_embedding (id, collection_id, embedding, document, cmetadata) "
    "SELECT %s, uuid, '[1,2,3,4,5,6,7,8]', 'written during the backup', '{}' FROM langchain_pg_collection LIMIT 1"
)
WRITER_DEADLINE_S = 60


class Writers:
    """Autocommit single-row writers and 50-row transaction writers, running until stopped; each id is
    recorded only after its COMMIT returned."""

    def __init__(self, dsn: str):
        self.dsn = dsn
        self.committed: list[str] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._autocommit_rows, daemon=True),
            threading.Thread(target=self._batches, daemon=True),
        ]

    def __enter__(self) -> "Writers":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=WRITER_DEADLINE_S)

    def _running(self, started: float) -> bool:
        return not self._stop.is_set() and time.monotonic() - started < WRITER_DEADLINE_S

    def _autocommit_rows(self) -> None:
        conn, started, n = app_connection(self.dsn), time.monotonic(), 0
        conn.autocommit = True
        with conn.cursor() as cur:
            while self._running(started):
                cur.execute(INSERT, (f"auto-{n}",))
                self.committed.append(f"auto-{n}")
                n += 1
        conn.close()

    def _batches(self) -> None:
        conn, started, batch = app_connection(self.dsn), time.monotonic(), 0
        while self._running(started):
            with conn.cursor() as cur:
                ids = [f"batch-{batch}-{i}" for i in range(50)]
                for id_ in ids:
                    cur.execute(INSERT, (id_,))
            conn.commit()
            self.committed.extend(ids)
            batch += 1
        conn.close()


def wait_until_backup_waits_for_lock(dsn: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        waiting = query(
            dsn,
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE 'LOCK TABLE%%'",
        )[0][0]
        if waiting:
            return
        time.sleep(0.05)
    raise AssertionError("the backup never waited for its lock")


@pytest.mark.parametrize("export", ["one session", "parallel ranges"])
def test_no_committed_row_is_lost_by_truncate_after_backup(store_db, backup_root, export, request):
    if export == "parallel ranges":
        # Writers queue behind the backup's SHARE lock; the export's other sessions must not.
        request.getfixturevalue("small_export_ranges")
    log = RecordingLog()
    execute(
        store_db,
        lambda cur: insert_sample_store(cur, "public", collections=1, embeddings_per_collection=2000, dimension=8),
    )
    # A writer's transaction is open when the backup starts and commits while the backup waits for it.
    open_conn = app_connection(store_db)
    open_ids = [f"open-{i}" for i in range(100)]
    with open_conn.cursor() as cur:
        for id_ in open_ids:
            cur.execute(INSERT, (id_,))
    outcome: dict = {}

    def backup() -> None:
        try:
            outcome["result"] = back_up_database(
                store_db,
                "public",
                LocalBackupStore(backup_root),
                GLOBAL_TASK_KEY,
                TS,
                BackupOptions(truncate_after_backup=True),
                log=log,
            )
        except Exception as exc:  # reported by the assertion below
            outcome["error"] = exc

    with Writers(store_db) as writers:
        time.sleep(0.3)
        backup_thread = threading.Thread(target=backup)
        backup_thread.start()
        wait_until_backup_waits_for_lock(store_db)
        time.sleep(0.2)
        open_conn.commit()
        backup_thread.join(timeout=120)
        time.sleep(0.3)  # writers go on after the truncate; their rows must stay in the table
    open_conn.close()

    assert "error" not in outcome, outcome.get("error")
    result = outcome["result"]
    in_set = {row["id"] for row in read_csv_rows(result.table("langchain_pg_embedding").path)}
    in_table = {row[0] for row in query(store_db, "SELECT id FROM langchain_pg_embedding")}
    committed = set(writers.committed) | set(open_ids)
    assert len(writers.committed) > 50 and any(i.startswith("batch-") for i in writers.committed)
    assert committed - in_set - in_table == set()
    assert set(open_ids) <= in_set
    [truncated] = result.truncated
    assert truncated.rows_before == len(in_set) == result.table("langchain_pg_embedding").rows
    assert in_set.isdisjoint(in_table)
    sessions = 2 if export == "parallel ranges" else 1
    assert any(line.startswith("langchain_pg_embedding: exported by 2 sessions") for line in log.infos) == (
        sessions == 2
    )
