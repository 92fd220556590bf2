"""Copying sets between stores (local <-> S3 on a real SeaweedFS server): byte-exact, verified, refused when
anything differs, never overwriting; as plain Python and as vector_copy_job."""

import re

import pytest

from pgvector_pipeline.contract import COPY_FROM_OTHER, COPY_JOB, RestoreFlags, copy_run_config
from pgvector_pipeline.definitions import defs
from pgvector_pipeline.errors import DataError, InvalidParams
from pgvector_pipeline.names import EMBEDDING_TABLE, LANGCHAIN_POSTGRES
from pgvector_pipeline.operations.backup import BackupOptions, back_up_database
from pgvector_pipeline.operations.copy import copy_set
from pgvector_pipeline.operations.restore import restore_backup_set
from pgvector_pipeline.resources.backup_store import OTHER_ROOT_ENV
from pgvector_pipeline.store.backup_set_info import STATUS_DAMAGED
from pgvector_pipeline.store.codecs import GZIP, NONE, ZSTD, Compression
from pgvector_pipeline.store.layout import damaged_name
from pgvector_pipeline.store.local import LocalBackupStore
from pgvector_pipeline.store.s3 import S3BackupStore
from pgvector_pipeline.store.s3_client import S3Root
from pgvector_pipeline.testing.db import execute, query
from tests.faulty_stores import Faulty, flip_a_byte, replace_stored_file
from tests.stores import make_store


@pytest.fixture
def filled_db(empty_db) -> str:
    make_store(empty_db, LANGCHAIN_POSTGRES)
    return empty_db


@pytest.fixture
def s3_store(s3_server, s3_bucket) -> S3BackupStore:
    return S3BackupStore(s3_server.client(), S3Root(s3_bucket, "offsite"))


def rows(dsn: str) -> list[str]:
    return [r[0] for r in query(dsn, "SELECT t::text FROM langchain_pg_embedding t ORDER BY 1")]


def stored_bytes(store, backup_set, table: str) -> bytes:
    name = backup_set.table_files[table]
    if isinstance(store, S3BackupStore):
        key = store.location_key(backup_set.task, name)
        return store.client.get_object(Bucket=store.root.bucket, Key=key)["Body"].read()
    return (store.set_directory(backup_set) / name).read_bytes()


@pytest.mark.parametrize("codec", [NONE, ZSTD, GZIP])
def test_a_set_goes_to_s3_and_back_byte_for_byte_and_restores(filled_db, backup_root, tmp_path, s3_store, codec):
    local = LocalBackupStore(backup_root)
    made = back_up_database(filled_db, "public", local, "global", None, BackupOptions(compression=Compression(codec)))
    source = local.locate(timestamp=made.timestamp)

    out = copy_set(source, s3_store)
    offsite = s3_store.locate(timestamp=made.timestamp)
    assert offsite.status == "complete" and offsite.manifest == source.manifest
    assert out.total_bytes == source.total_bytes and out.target == s3_store.location("global")
    assert stored_bytes(s3_store, offsite, EMBEDDING_TABLE) == stored_bytes(local, source, EMBEDDING_TABLE)

    elsewhere = LocalBackupStore(tmp_path / "restored_host")
    copy_set(offsite, elsewhere)
    back = elsewhere.locate(timestamp=made.timestamp)
    assert back.manifest == source.manifest and back.table_files == source.table_files
    before = rows(filled_db)
    execute(filled_db, lambda cur: cur.execute("TRUNCATE langchain_pg_embedding, langchain_pg_collection"))
    restore_backup_set(filled_db, "public", back)
    assert rows(filled_db) == before


def test_a_changed_source_file_copies_nothing(filled_db, backup_root, s3_store, s3_server, s3_bucket):
    local = LocalBackupStore(backup_root)
    made = back_up_database(filled_db, "public", local, "global", None, BackupOptions(compression=Compression(NONE)))
    path = made.table(EMBEDDING_TABLE).path
    path.write_bytes(path.read_bytes().replace(b"five dims", b"five dimz"))

    with pytest.raises(DataError, match="does not match its manifest") as failed:
        copy_set(local.locate(timestamp=made.timestamp), s3_store)
    assert s3_store.list_sets() == []
    assert s3_server.client().list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    # The copy found the source damaged: it says so in the store too, and no longer counts as complete there.
    assert failed.value.message.endswith(
        f"The set is marked damaged ({local.location('global')}/{damaged_name(made.timestamp)}), so it never counts "
        f"as complete."
    )
    assert local.locate(timestamp=made.timestamp).status == STATUS_DAMAGED


@pytest.mark.parametrize("to_s3", [True, False])
def test_a_copy_that_does_not_read_back_is_damaged_in_the_target(filled_db, backup_root, tmp_path, s3_store, to_s3):
    """A byte of the copy flipped right after it was published: the copy's read-back finds it and marks the copy
    damaged, so the target never counts it as complete."""
    local = LocalBackupStore(backup_root)
    made = back_up_database(filled_db, "public", local, "global", None)
    source = local.locate(timestamp=made.timestamp)
    source_store, target = (local, s3_store) if to_s3 else (s3_store, LocalBackupStore(tmp_path / "other"))
    if not to_s3:
        copy_set(source, s3_store)
        source = s3_store.locate(timestamp=made.timestamp)
    name = made.table(EMBEDDING_TABLE).entry.file

    def flip_a_copied_byte(manifest):
        replace_stored_file(target, manifest.task_id, name, flip_a_byte)

    with pytest.raises(DataError) as failed:
        copy_set(source, Faulty(target, on_publish=flip_a_copied_byte))

    where = target.location("global")
    assert re.fullmatch(
        rf"The copy of set {made.timestamp} was published in {re.escape(where)}, but {re.escape(name)} does not read "
        rf"back as it was written \(sha256 [0-9a-f]{{12}}…, written [0-9a-f]{{12}}…\): the storage holding it changed "
        rf"it\. The set is marked damaged \({re.escape(where)}/{damaged_name(made.timestamp)}\), so it never counts "
        rf"as complete\. Check the target storage; delete the damaged copy \(retention deletes it as it does old "
        rf"sets\) before copying the set again\.",
        failed.value.message,
    ), failed.value.message
    assert target.locate(timestamp=made.timestamp).status == STATUS_DAMAGED
    assert source_store.locate(timestamp=made.timestamp).status == "complete"


def test_a_copy_never_overwrites_and_old_system_sets_are_adopted_first(filled_db, backup_root, s3_store):
    local = LocalBackupStore(backup_root)
    made = back_up_database(filled_db, "public", local, "global", None, BackupOptions(compression=Compression(NONE)))
    made.manifest_path.unlink()
    made.log_path.unlink()
    legacy = local.locate(timestamp=made.timestamp)
    assert legacy.status == "legacy"

    copy_set(legacy, s3_store)
    assert local.locate(timestamp=made.timestamp).manifest.adopted
    assert s3_store.locate(timestamp=made.timestamp).manifest.adopted
    with pytest.raises(InvalidParams, match=f"A backup set with timestamp {made.timestamp} already exists"):
        copy_set(local.locate(timestamp=made.timestamp), s3_store)


def test_the_copy_job_copies_either_way(instance, filled_db, backup_root, s3_env, s3_bucket, s3_store, monkeypatch):
    local = LocalBackupStore(backup_root)
    made = back_up_database(filled_db, "public", local, "global", None)
    job = defs.resolve_job_def(COPY_JOB)

    unset = job.execute_in_process(
        instance=instance, run_config=copy_run_config(None, made.timestamp), raise_on_error=False
    )
    failure = unset.failure_data_for_node("copy_backup_set").user_failure_data
    assert failure.metadata["error_type"].value == "INVALID_PARAMS" and OTHER_ROOT_ENV in failure.description

    monkeypatch.setenv(OTHER_ROOT_ENV, f"s3://{s3_bucket}/offsite")
    out = job.execute_in_process(instance=instance, run_config=copy_run_config(None, made.timestamp))
    [output] = [e for e in out.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = output.event_specific_data.metadata
    assert metadata["to"].value == f"s3://{s3_bucket}/offsite/vector_bak"
    assert metadata["bytes"].value == sum(t.entry.file_bytes for t in made.tables)
    assert [s.timestamp for s in s3_store.list_sets()] == [made.timestamp]

    # Bring it back to a machine that lost its sets, and restore from there.
    for path in (backup_root / "vector_bak").iterdir():
        path.unlink()
    back = job.execute_in_process(instance=instance, run_config=copy_run_config(None, made.timestamp, COPY_FROM_OTHER))
    assert back.success and [s.status for s in local.list_sets()] == ["complete"]
    restored = restore_backup_set(
        filled_db, "public", local.locate(timestamp=made.timestamp), RestoreFlags(truncate_before_restore=True)
    )
    assert restored.tables[-1].rows_restored == 8
