"""The same behaviour on every backup store: a local directory and S3 (a real SeaweedFS server).

Each test runs once per store (the `any_root` fixture): backing up, listing, restoring, claims, holds,
retention, the log and adoption, through the store interface and through the Dagster jobs and sensors.
"""

import re
import threading

import pytest

from pgvector_pipeline.assets.backup import ASSET_BY_TABLE, set_checks
from pgvector_pipeline.contract import RestoreFlags
from pgvector_pipeline.errors import DataError, InvalidParams, ResourceNotFound
from pgvector_pipeline.names import COLLECTION_TABLE, EMBEDDING_TABLE
from pgvector_pipeline.operations.backup import BackupOptions, back_up_database
from pgvector_pipeline.operations.restore import restore_backup_set
from pgvector_pipeline.operations.set_checks import EMBEDDINGS_CHECK, FILES_CHECK
from pgvector_pipeline.store.backup_set_info import STATUS_COMPLETE, STATUS_DAMAGED, STATUS_UNFINISHED
from pgvector_pipeline.store.codecs import GZIP, NONE, ZSTD, Compression
from pgvector_pipeline.store.layout import damaged_name
from pgvector_pipeline.store.retention import RetentionPolicy, apply_retention
from pgvector_pipeline.testing.db import execute, query
from tests.faulty_stores import Faulty, flip_a_byte, replace_stored_file
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


def test_a_changed_file_restores_nothing_and_marks_the_set_damaged(filled_db, any_store):
    result = back_up_database(
        filled_db, "public", any_store, "global", None, BackupOptions(compression=Compression(NONE))
    )
    listed = any_store.locate(timestamp=result.timestamp)
    replace_stored_file(
        any_store, "global", listed.table_files[EMBEDDING_TABLE], lambda data: data.replace(b"five dims", b"five dimz")
    )
    before = rows(filled_db)
    with pytest.raises(DataError, match="does not match its manifest") as failed:
        restore_backup_set(
            filled_db,
            "public",
            any_store.locate(timestamp=result.timestamp),
            RestoreFlags(truncate_before_restore=True),
        )
    assert rows(filled_db) == before
    # What the restore found is kept: the set no longer counts as complete (drills, freshness, retention).
    assert failed.value.message.endswith(
        f"The set is marked damaged ({any_store.location('global')}/{damaged_name(result.timestamp)}), so it never "
        f"counts as complete."
    ), failed.value.message
    assert any_store.locate(timestamp=result.timestamp).status == STATUS_DAMAGED


def retain_newest_one(store) -> list[str]:
    """Retention keeping the newest set of each location (and always its newest complete one): what it deleted."""
    log = RecordingLog()
    result = apply_retention(
        store.list_sets(), RetentionPolicy(keep_newest=1), dry_run=False, log_info=log.info, warn=log.warning
    )
    return sorted(s.timestamp for s in result.deleted)


def test_a_set_that_fails_its_own_reread_is_damaged_and_the_last_good_set_is_kept(filled_db, any_store):
    """One byte of the embeddings file flipped right after it got its final name: the backup's re-read before the
    truncate finds it, truncates nothing, and marks the set damaged, so it never counts as complete and retention
    keeps the set before it."""
    good = back_up_database(filled_db, "public", any_store, "global", None).timestamp
    before = rows(filled_db)
    damaged_file: list[str] = []

    def flip_a_stored_byte(manifest):
        damaged_file.append(manifest.tables[EMBEDDING_TABLE].file)
        replace_stored_file(any_store, manifest.task_id, damaged_file[0], flip_a_byte)

    claimed: list[str] = []
    with pytest.raises(DataError) as failed:
        back_up_database(
            filled_db,
            "public",
            Faulty(any_store, on_publish=flip_a_stored_byte),
            "global",
            None,
            BackupOptions(truncate_after_backup=True),
            on_claim=claimed.append,
        )

    [bad] = claimed
    where = any_store.location("global")
    assert re.fullmatch(
        rf"Set {bad} was published in {re.escape(where)}, but {re.escape(damaged_file[0])} does not read back as it "
        rf"was written \(sha256 [0-9a-f]{{12}}…, written [0-9a-f]{{12}}…\): the storage holding it changed it\. The "
        rf"set is marked damaged \({re.escape(where)}/{damaged_name(bad)}\), so it never counts as complete\. "
        rf"{EMBEDDING_TABLE} was NOT truncated\. Check that storage, then back up again\.",
        failed.value.message,
    ), failed.value.message
    assert "verified" not in failed.value.message and not failed.value.can_retry
    assert rows(filled_db) == before
    listed = {s.timestamp: s for s in any_store.list_sets()}
    assert (listed[bad].status, listed[good].status) == (STATUS_DAMAGED, STATUS_COMPLETE)
    assert retain_newest_one(any_store) == []
    with pytest.raises(DataError, match=f"Set {bad} in .* is damaged: .*{damaged_name(bad)} marks it damaged"):
        restore_backup_set(filled_db, "public", any_store.locate(timestamp=bad))
    # Once a newer set is complete, the damaged one goes like any other old set, its marker with it.
    newer = back_up_database(filled_db, "public", any_store, "global", None).timestamp
    assert retain_newest_one(any_store) == sorted([good, bad])
    assert [(s.timestamp, s.status) for s in any_store.list_sets()] == [(newer, STATUS_COMPLETE)]


def test_a_set_whose_files_check_fails_is_marked_damaged(filled_db, any_store):
    """The backup run's files_match_manifest check reads the set back: a file that no longer matches its manifest
    makes the set damaged in the store, not only a failed check, so retention keeps the set before it."""
    good = back_up_database(filled_db, "public", any_store, "global", None).timestamp
    result = back_up_database(filled_db, "public", any_store, "global", None)
    replace_stored_file(any_store, "global", result.table(EMBEDDING_TABLE).entry.file, flip_a_byte)

    fields, sets = set_checks(result, any_store, RecordingLog())

    checks = {(f["asset_key"], f["check_name"]): f for f in fields}
    files = checks[(ASSET_BY_TABLE[EMBEDDING_TABLE], FILES_CHECK)]
    where = any_store.location("global")
    assert not files["passed"] and not checks[(ASSET_BY_TABLE[EMBEDDING_TABLE], EMBEDDINGS_CHECK)]["passed"]
    assert files["description"].endswith(
        f" The set is marked damaged ({where}/{damaged_name(result.timestamp)}), so it never counts as complete."
    ), files["description"]
    # The inventory the run reports after its checks, and any later listing, say so.
    assert {s.timestamp: s.status for s in sets} == {result.timestamp: STATUS_DAMAGED, good: STATUS_COMPLETE}
    assert {s.timestamp: s.status for s in any_store.list_sets()} == {s.timestamp: s.status for s in sets}
    assert retain_newest_one(any_store) == []


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
