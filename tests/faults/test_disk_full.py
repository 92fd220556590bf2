"""A backup root on a real file system that fills up (a 2 MiB tmpfs)."""

import errno

import dagster as dg
import pytest

from pgvector_pipeline.operations.backup import BackupOptions, back_up_database
from pgvector_pipeline.partitions import register_backup_partition
from pgvector_pipeline.store.layout import GLOBAL_TASK_KEY, LOG_FILE_NAME
from pgvector_pipeline.store.local import LocalBackupStore
from pgvector_pipeline.testing.db import execute, query
from pgvector_pipeline.testing.langchain_tables import insert_sample_store
from tests.helpers import DSN_ENV, PLAIN_CSV, RecordingLog, recent_timestamp, run_backup_job

TS = "20261124_120000"


def fill(directory) -> None:
    """Write a filler file until the file system says it is full."""
    with open(directory / "filler.bin", "wb", buffering=0) as file:
        try:
            while True:
                file.write(b"\0" * 65536)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        try:
            while True:
                file.write(b"\0" * 512)
        except OSError:
            pass


def test_disk_full_mid_copy_fails_once_clearly_and_leaves_nothing(small_disk, store_db, monkeypatch):
    # About 3 MB of CSV (stored plain) for a 2 MiB disk.
    execute(
        store_db,
        lambda cur: insert_sample_store(cur, "public", collections=1, embeddings_per_collection=5000, dimension=64),
    )
    monkeypatch.setenv(DSN_ENV, store_db)
    with dg.instance_for_test() as instance:
        ts = recent_timestamp()
        key = register_backup_partition(instance, GLOBAL_TASK_KEY, ts)
        result = run_backup_job(
            instance, small_disk, {"env": DSN_ENV}, partition_key=key, truncate_after_backup=True, compression="none"
        )

    assert not result.success
    failure = result.failure_data_for_node("vector_store_backup").user_failure_data
    assert failure.metadata["error_type"].value == "STORAGE_ERROR"
    assert failure.metadata["can_retry"].value is False
    description = failure.description
    assert f"The disk holding {small_disk / 'vector_bak'} (file system at {small_disk}) is full" in description
    assert f"langchain_pg_embedding_{ts}.csv.tmp" in description
    assert "2.0 MB of 2.0 MB are free now that the partial files are removed" in description
    assert "the set needs about 3." in description and "MB more than is free" in description
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    directory = small_disk / "vector_bak"
    assert sorted(p.name for p in directory.iterdir()) == [LOG_FILE_NAME]
    log = (directory / LOG_FILE_NAME).read_text()
    assert f"backup {ts} FAILED" in log and "is full" in log
    assert query(store_db, "SELECT count(*) FROM langchain_pg_embedding")[0][0] == 5000


def test_disk_full_after_the_set_is_published_only_warns(small_disk, store_db):
    execute(
        store_db,
        lambda cur: insert_sample_store(cur, "public", collections=2, embeddings_per_collection=50, dimension=8),
    )

    class FillingLog(RecordingLog):
        def info(self, msg: str) -> None:
            super().info(msg)
            if msg.startswith(f"Backup set {TS} written"):
                fill(small_disk)

    log = FillingLog()
    result = back_up_database(
        store_db,
        "public",
        LocalBackupStore(small_disk),
        GLOBAL_TASK_KEY,
        TS,
        BackupOptions(truncate_after_backup=True),
        log=log,
    )

    assert [(s.rows_before, s.rows_after) for s in result.truncated] == [(100, 0)]
    assert query(store_db, "SELECT count(*) FROM langchain_pg_embedding")[0][0] == 0
    assert result.manifest_path.exists() and result.table("langchain_pg_embedding").path.stat().st_size > 0
    [warning] = [w for w in log.warnings if w.startswith("Could not append")]
    assert "No space left on device" in warning and f"backup {TS} OK" in warning


def test_partial_files_are_removed_even_when_closing_them_fails(small_disk, store_db):
    execute(
        store_db,
        lambda cur: insert_sample_store(cur, "public", collections=1, embeddings_per_collection=5000, dimension=64),
    )
    (small_disk / "vector_bak").mkdir()
    with pytest.raises(Exception) as failure:
        back_up_database(store_db, "public", LocalBackupStore(small_disk), GLOBAL_TASK_KEY, TS, PLAIN_CSV)
    assert type(failure.value).__name__ == "StorageError"
    assert sorted(p.name for p in (small_disk / "vector_bak").iterdir()) == [LOG_FILE_NAME]
