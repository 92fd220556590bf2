"""The same behaviour on every backup store: a local directory and S3 (a real SeaweedFS server).

Each test runs once per store (the `any_root` fixture): backing up, listing, restoring, claims, holds,
retention, the log and adoption, through the store interface and through the Dagster jobs and sensors.
"""

import threading

import pytest

from pgvector_pipeline.backup import BackupOptions, back_up_database
from pgvector_pipeline.contract import RestoreFlags
from pgvector_pipeline.errors import DataError, InvalidParams, ResourceNotFound
from pgvector_pipeline.names import COLLECTION_TABLE, EMBEDDING_TABLE
from pgvector_pipeline.restore import restore_backup_set
from pgvector_pipeline.store.codecs import GZIP, NONE, ZSTD, Compression
from pgvector_pipeline.store.listing import STATUS_COMPLETE, STATUS_UNFINISHED
from pgvector_pipeline.store.retention import RetentionPolicy, apply_retention
from pgvector_pipeline.testing.db import execute, query
from tests.helpers import RecordingLog, recent_timestamps
from tests.stores import make_store

TABLES = (COLLECTION_TABLE, EMBEDDING_TABLE)


def rows(dsn: str) -> dict[str, list[str]]:
    return {table: [r[0] for r in query(dsn, f"SELECT t::text FROM {table} t ORDER BY 1")] for table in TABLES}


@pytest.fixture
def filled_db(empty_db) -> str:
    make_store(empty_db, "langchain_postgres")
    return empty_db


def empty_tables(dsn: str) -> None:
    execute(dsn, lambda cur: cur.execute(f"TRUNCATE {', '.join(TABLES)}"))


@pytest.mark.parametrize("codec", [NONE, ZSTD, GZIP])
def test_a_set_round_trips_through_the_store(filled_db, any_store, codec):
    before = rows(filled_db)
    result = back_up_database(
        filled_db, "public", any_store, "global", None, BackupOptions(compression=Compression(codec))
    )
    assert result.location == any_store.location("global")
    [listed] = any_store.list_sets()
    assert (listed.status, listed.timestamp, set(listed.tables)) == (STATUS_COMPLETE, result.timestamp, set(TABLES))
    assert set(listed.codecs.values()) == {codec}
    assert listed.sizes == {t.table: t.entry.file_bytes for t in result.tables}
    assert listed.has_log
    empty_tables(filled_db)
    restored = restore_backup_set(filled_db, "public", any_store.locate(timestamp=result.timestamp))
    assert rows(filled_db) == before
    assert {t.table: t.rows_restored for t in restored.tables} == {t.table: t.rows for t in result.tables}


def test_task_sets_need_their_task_unless_created(filled_db, any_store):
    with pytest.raises(ResourceNotFound, match="create_task_dir"):
        back_up_database(filled_db, "public", any_store, "task_7", None)
    created = back_up_database(filled_db, "public", any_store, "task_7", None, BackupOptions(create_task_dir=True))
    assert any_store.task_ids() == ["task_7"]
    assert [s.timestamp for s in any_store.list_sets(task_id="task_7")] == [created.timestamp]
    assert any_store.list_sets(global_only=True) == []
    assert any_store.locate(task_id="task_7", timestamp=created.timestamp).location == any_store.location("task_7")
    with pytest.raises(ResourceNotFound, match="No backup set with timestamp 20200101_000000"):
        any_store.locate(task_id="task_7", timestamp="20200101_000000")


def test_a_timestamp_is_claimed_once_and_sets_never_overwrite(filled_db, any_store):
    [moment] = recent_timestamps(1)
    with any_store.new_set("global", moment):
        with pytest.raises(InvalidParams, match=f"Another run is writing set {moment}"):
            any_store.new_set("global", moment).__enter__()
        [being_written] = any_store.list_sets()
        assert being_written.status == STATUS_UNFINISHED
    assert any_store.list_sets() == []  # left unpublished: nothing of it stays
    back_up_database(filled_db, "public", any_store, "global", moment)
    with pytest.raises(InvalidParams, match=f"set with timestamp {moment} already exists"):
        back_up_database(filled_db, "public", any_store, "global", moment)


def test_runs_started_together_get_distinct_sets(filled_db, any_store):
    results, errors = [], []

    def back_up() -> None:
        try:
            results.append(back_up_database(filled_db, "public", any_store, "global", None))
        except Exception as error:  # collected: the test fails on it below
            errors.append(error)

    threads = [threading.Thread(target=back_up) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len({r.timestamp for r in results}) == 3
    assert sorted(s.timestamp for s in any_store.list_sets() if s.complete) == sorted(r.timestamp for r in results)


def test_a_changed_file_restores_nothing(filled_db, any_store):
    result = back_up_database(
        filled_db, "public", any_store, "global", None, BackupOptions(compression=Compression(NONE))
    )
    listed = any_store.locate(timestamp=result.timestamp)
    replace_file(any_store, listed, EMBEDDING_TABLE, lambda data: data.replace(b"five dims", b"five dimz"))
    before = rows(filled_db)
    with pytest.raises(DataError, match="does not match its manifest"):
        restore_backup_set(
            filled_db,
            "public",
            any_store.locate(timestamp=result.timestamp),
            RestoreFlags(truncate_before_restore=True),
        )
    assert rows(filled_db) == before


def replace_file(store, backup_set, table: str, change) -> None:
    """Rewrite one file of a set in place, as someone with write access to the store could."""
    name = backup_set.table_files[table]
    if hasattr(store, "client"):
        key = store.location_key(backup_set.task, name)
        data = store.client.get_object(Bucket=store.root.bucket, Key=key)["Body"].read()
        store.client.put_object(Bucket=store.root.bucket, Key=key, Body=change(data))
    else:
        path = backup_set.directory / name
        path.write_bytes(change(path.read_bytes()))


def test_retention_deletes_old_sets_but_never_a_held_or_claimed_one(filled_db, any_store):
    made = [back_up_database(filled_db, "public", any_store, "global", None).timestamp for _ in range(3)]
    oldest, middle, newest = made
    log = RecordingLog()
    policy = RetentionPolicy(keep_newest=1)
    listed = any_store.list_sets()
    # A reader holds the oldest set, and a run claims the middle one after retention listed them.
    with any_store.read_set(any_store.locate(timestamp=oldest), list(TABLES)), _claimed(any_store, middle):
        result = apply_retention(listed, policy, dry_run=False, log_info=log.info, warn=log.warning)
    assert result.deleted == [] and {s.timestamp for s in result.skipped_busy} == {oldest, middle}
    result = apply_retention(any_store.list_sets(), policy, dry_run=False, log_info=log.info, warn=log.warning)
    assert {s.timestamp for s in result.deleted} == {oldest, middle}
    assert [s.timestamp for s in any_store.list_sets()] == [newest]
    assert result.bytes_freed > 0


class _claimed:
    """Holds the claim of an existing set as a writer would (a retry of its partition, or a deleter)."""

    def __init__(self, store, timestamp: str):
        self.store, self.timestamp = store, timestamp

    def __enter__(self):
        if hasattr(self.store, "client"):
            from pgvector_pipeline.store.layout import lock_name
            from pgvector_pipeline.store.s3_lease import Lease

            self.lease = Lease.put(
                self.store, self.store.location_key("global", lock_name(self.timestamp)), exclusive=True
            )
        else:
            from pgvector_pipeline.store.backup_set import SetLock
            from pgvector_pipeline.store.locations import open_location

            self.directory = open_location(self.store.root, "global")
            self.lease = SetLock.try_acquire(self.directory, self.timestamp, 0o600)
        assert self.lease is not None
        return self

    def __exit__(self, *exc_info):
        self.lease.release()


def test_an_old_system_set_is_adopted_and_then_verified(filled_db, any_store):
    made = back_up_database(
        filled_db, "public", any_store, "global", None, BackupOptions(compression=Compression(NONE))
    )
    legacy = strip_manifest(any_store, made)
    assert legacy.status == "legacy" and legacy.manifest is None
    manifest = any_store.adopt(legacy)
    assert manifest.adopted and {t: e.sha256 for t, e in manifest.tables.items()} == {
        t.table: t.sha256 for t in made.tables
    }
    assert any_store.locate(timestamp=made.timestamp).status == STATUS_COMPLETE
    with pytest.raises(DataError, match="not a legacy set"):
        any_store.adopt(any_store.locate(timestamp=made.timestamp))


def strip_manifest(store, made):
    """The set as the old system would have left it: its CSVs, no manifest, no log naming one."""
    from pgvector_pipeline.store.layout import manifest_name

    name = manifest_name(made.timestamp)
    if hasattr(store, "client"):
        for item in list(store.objects(store.location_key("global"))):
            if item["Key"].endswith(name) or "/vector_backup_log/" in item["Key"]:
                store.client.delete_object(Bucket=store.root.bucket, Key=item["Key"])
    else:
        (made.directory / name).unlink()
        made.log_path.unlink()
    return store.locate(timestamp=made.timestamp)
