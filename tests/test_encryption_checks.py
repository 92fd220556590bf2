"""Encrypted sets (issue 35) read by what is not a restore: the set checks on hosts with and without the identity, the
restore drill, copies between stores with other recipients (re-encrypted, or as they are stored), and a backup run
of the Dagster job on a host that holds only the public key."""

import logging

import dagster as dg
import pytest

from pgvector_pipeline.contract import REQUEST_BACKUP_JOB, RestoreFlags, request_run_config
from pgvector_pipeline.errors import InvalidParams
from pgvector_pipeline.names import EMBEDDING_TABLE
from pgvector_pipeline.operations.backup import BackupChoices, back_up_database, backup_options
from pgvector_pipeline.operations.copy import copy_set
from pgvector_pipeline.operations.drill import restore_drill
from pgvector_pipeline.operations.restore import restore_backup_set
from pgvector_pipeline.operations.set_checks import (
    EMBEDDINGS_CHECK,
    FILES_CHECK,
    check_files_and_embeddings,
    check_set,
    check_written_set,
)
from pgvector_pipeline.store.codecs import NONE, Compression
from pgvector_pipeline.store.keys import IDENTITY_FILE_ENV, RECIPIENTS_ENV
from pgvector_pipeline.store.local import LocalBackupStore
from pgvector_pipeline.store.s3 import S3BackupStore
from pgvector_pipeline.store.s3_client import S3Root
from pgvector_pipeline.tables import TableSpec
from pgvector_pipeline.testing.db import execute, query
from pgvector_pipeline.testing.langchain_tables import fill_sample_store
from tests.catalog_fingerprint import contents
from tests.encryption_keys import KeyPair, keys_of, new_key_pair
from tests.faulty_stores import flip_a_byte
from tests.helpers import DSN_ENV, RecordingLog, resources_config

SWAP = RestoreFlags(truncate_before_restore=True)


@pytest.fixture
def keys_dir(tmp_path):
    directory = tmp_path / "keys"
    directory.mkdir()
    return directory


@pytest.fixture
def key(keys_dir) -> KeyPair:
    return new_key_pair(keys_dir, "current")


def backed_up(store_db, root, key, **choices):
    """A sample store backed up into an encrypted set of a local store at `root` by a host that holds only the public
    key; the result and the set as that host lists it."""
    fill_sample_store(store_db, collections=2, embeddings_per_collection=50, dimension=8)
    store = LocalBackupStore(root, keys=keys_of(to=(key,)))
    options = backup_options(store_db, "public", BackupChoices(**choices), 1, 10, logging.getLogger(__name__))
    result = back_up_database(store_db, "public", store, "global", None, options)
    return result, store.locate(timestamp=result.timestamp)


def test_without_the_identity_the_files_check_reads_stored_bytes_and_the_vectors_are_skipped(store_db, tmp_path, key):
    _, backup_set = backed_up(store_db, tmp_path / "backups", key)

    files, embeddings = check_files_and_embeddings(backup_set)

    assert (files.passed, files.metadata["encrypted"]) == (True, True)
    assert files.description == (
        "All 2 files and the encrypted manifest match the set's index (sizes and sha256 as stored, encrypted; the "
        "content inside is checked where an identity reads it)."
    )
    assert (embeddings.passed, embeddings.warn_only, embeddings.skipped) == (False, True, True)
    assert embeddings.description == (
        f"Skipped: this host holds no identity of the recipients set {backup_set.timestamp} is encrypted to "
        f"({key.fingerprint}), so its content cannot be read here; the restore drill, run where the identity is, "
        f"proves it restores."
    )
    assert backup_set.manifest is None  # nothing of the content was read


def test_with_the_identity_every_check_reads_the_content(store_db, tmp_path, key):
    _, listed = backed_up(store_db, tmp_path / "backups", key)
    reader = LocalBackupStore(tmp_path / "backups", keys=keys_of(read_with=(key,)))

    checks = {c.name: c for c in check_set(reader.locate(timestamp=listed.timestamp), None)}

    assert checks[FILES_CHECK].passed and checks[EMBEDDINGS_CHECK].passed
    assert checks[EMBEDDINGS_CHECK].metadata["vectors"] == 100


def test_a_host_with_another_identity_skips_the_vectors_saying_why(store_db, tmp_path, key, keys_dir):
    other = new_key_pair(keys_dir, "other")
    _, listed = backed_up(store_db, tmp_path / "backups", key)
    reader = LocalBackupStore(tmp_path / "backups", keys=keys_of(read_with=(other,)))

    files, embeddings = check_files_and_embeddings(reader.locate(timestamp=listed.timestamp))

    assert files.passed and embeddings.skipped
    assert f"encrypted to the age recipients with fingerprints {key.fingerprint}" in embeddings.description
    assert other.recipient not in embeddings.description and key.recipient not in embeddings.description


@pytest.mark.parametrize("damaged", ["a table file", "the encrypted manifest"])
def test_without_the_identity_a_changed_stored_byte_fails_and_marks_the_set_damaged(store_db, tmp_path, key, damaged):
    result, backup_set = backed_up(store_db, tmp_path / "backups", key)
    directory = tmp_path / "backups" / "vector_bak"
    name = (
        backup_set.table_files[EMBEDDING_TABLE]
        if damaged == "a table file"
        else f"vector_backup_{result.timestamp}.json.age"
    )
    (directory / name).write_bytes(flip_a_byte((directory / name).read_bytes()))

    files, embeddings = check_files_and_embeddings(backup_set)

    assert not files.passed and not files.warn_only
    assert files.description.startswith(f"{name} does not match")
    assert embeddings.warn_only and not embeddings.passed
    assert LocalBackupStore(tmp_path / "backups").locate(timestamp=result.timestamp).status == "damaged"


def test_a_run_checks_the_encrypted_set_it_wrote_without_an_identity(store_db, tmp_path, key):
    result, _ = backed_up(store_db, tmp_path / "backups", key)
    assert result.encrypted_to == (key.fingerprint,)
    log = RecordingLog()

    checked, sets = check_written_set(LocalBackupStore(tmp_path / "backups", keys=keys_of(to=(key,))), result, log)

    checks = {check.name: check for check in checked}
    assert checks[FILES_CHECK].passed and checks[EMBEDDINGS_CHECK].passed
    assert checks[EMBEDDINGS_CHECK].metadata["vectors"] == 100
    assert [s.status for s in sets] == ["complete"] and sets[0].manifest is None  # nothing of the content was read
    assert log.warnings == [] and len(log.infos) == len(checked)


def test_a_run_whose_vectors_were_not_counted_skips_them_without_an_identity(store_db, tmp_path, key):
    execute(
        store_db,
        lambda cur: cur.execute(
            "CREATE TABLE docs (id int PRIMARY KEY, v vector); INSERT INTO docs SELECT i, '[1,2]' FROM "
            "generate_series(1, 5) i"
        ),
    )
    store = LocalBackupStore(tmp_path / "backups", keys=keys_of(to=(key,)))
    choices = BackupChoices(compression=Compression(NONE), tables=(TableSpec("docs"),))
    options = backup_options(store_db, "public", choices, 1, 10, logging.getLogger(__name__))
    result = back_up_database(store_db, "public", store, "global", None, options)

    checks = {c.name: c for c in check_written_set(store, result, RecordingLog())[0]}

    assert checks[FILES_CHECK].passed and checks[EMBEDDINGS_CHECK].skipped


def test_the_drill_restores_an_encrypted_set_where_the_identity_is_and_refuses_elsewhere(store_db, tmp_path, key):
    _, listed = backed_up(store_db, tmp_path / "backups", key)
    reader = LocalBackupStore(tmp_path / "backups", keys=keys_of(read_with=(key,)))

    drilled = restore_drill(store_db, "public", reader.locate(timestamp=listed.timestamp), True, RecordingLog())

    assert drilled.passed and drilled.live_equal
    with pytest.raises(InvalidParams, match=f"fingerprints {key.fingerprint}, and this host holds no identity"):
        restore_drill(store_db, "public", listed, False, RecordingLog())
    schemas = query(store_db, "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'pgvector_drill%'")
    assert schemas == []


# --- copies -------------------------------------------------------------------------------------------------------


@pytest.fixture
def bucket_root(s3_server, s3_bucket):
    return lambda keys: S3BackupStore(s3_server.client(), S3Root(s3_bucket, "offsite"), keys=keys)


def test_a_copy_to_a_store_of_other_recipients_is_re_encrypted_where_the_identity_is(
    store_db, tmp_path, key, keys_dir, bucket_root
):
    offsite = new_key_pair(keys_dir, "offsite")
    result, listed = backed_up(store_db, tmp_path / "backups", key)
    before = contents(store_db)
    source = LocalBackupStore(tmp_path / "backups", keys=keys_of(read_with=(key,)))
    log = RecordingLog()

    copy_set(source.locate(timestamp=result.timestamp), bucket_root(keys_of(to=(offsite,))), log=log.info)

    assert f"re-encrypted from {key.fingerprint} to {offsite.fingerprint}" in "\n".join(log.infos)
    copied = bucket_root(keys_of(read_with=(offsite,))).locate(timestamp=result.timestamp)
    assert (copied.status, copied.recipients) == ("complete", [offsite.fingerprint])
    # Only the target's identity reads it now.
    with pytest.raises(InvalidParams, match=f"fingerprints {offsite.fingerprint}"):
        restore_backup_set(
            store_db, "public", bucket_root(keys_of(read_with=(key,))).locate(timestamp=result.timestamp)
        )
    execute(store_db, lambda cur: cur.execute("DELETE FROM langchain_pg_embedding"))
    restore_backup_set(store_db, "public", copied, SWAP)
    assert contents(store_db) == before
    assert {c.name: c.passed for c in check_set(copied, None)} == {
        FILES_CHECK: True,
        EMBEDDINGS_CHECK: True,
        "rows_hold_up": True,
    }


def test_without_the_identity_a_copy_keeps_the_files_as_they_are_stored(store_db, tmp_path, key, keys_dir, bucket_root):
    offsite = new_key_pair(keys_dir, "offsite")
    result, listed = backed_up(store_db, tmp_path / "backups", key)
    log = RecordingLog()

    copy_set(listed, bucket_root(keys_of(to=(offsite,))), log=log.info)

    assert "its files are copied as they are stored, encrypted to the recipients they were" in "\n".join(log.infos)
    target = bucket_root(keys_of(read_with=(key,)))
    copied = target.locate(timestamp=result.timestamp)
    assert (copied.status, copied.recipients, copied.table_files) == ("complete", [key.fingerprint], listed.table_files)
    for name in [*listed.table_files.values(), f"vector_backup_{result.timestamp}.json.age"]:
        source_bytes = (tmp_path / "backups" / "vector_bak" / name).read_bytes()
        key_name = target.location_key("global", name)
        assert target.client.get_object(Bucket=target.root.bucket, Key=key_name)["Body"].read() == source_bytes
    restore_backup_set(store_db, "public", copied, RestoreFlags(truncate_before_restore=True, verify_only=True))
    # And back, as it is stored again.
    back = LocalBackupStore(tmp_path / "back", keys=keys_of(read_with=(key,)))
    copy_set(copied, back)
    assert back.locate(timestamp=result.timestamp).status == "complete"


def test_a_set_in_clear_copied_to_a_store_that_encrypts_is_encrypted(store_db, tmp_path, key, bucket_root):
    fill_sample_store(store_db, collections=2, embeddings_per_collection=50, dimension=8)
    before = contents(store_db)
    clear = LocalBackupStore(tmp_path / "backups")
    result = back_up_database(store_db, "public", clear, "global", None)

    copy_set(clear.locate(timestamp=result.timestamp), bucket_root(keys_of(to=(key,))))

    copied = bucket_root(keys_of(read_with=(key,))).locate(timestamp=result.timestamp)
    assert (copied.status, copied.encrypted, copied.recipients) == ("complete", True, [key.fingerprint])
    assert all(name.endswith(".csv.zst.age") for name in copied.table_files.values())
    execute(store_db, lambda cur: cur.execute("DELETE FROM langchain_pg_embedding"))
    restore_backup_set(store_db, "public", copied, SWAP)
    assert contents(store_db) == before


# --- the Dagster run ----------------------------------------------------------------------------------------------


def test_a_backup_run_on_a_host_with_only_the_public_key(store_db, backup_root, instance, monkeypatch, key):
    monkeypatch.setenv(DSN_ENV, store_db)
    monkeypatch.setenv(RECIPIENTS_ENV, key.recipient)
    monkeypatch.delenv(IDENTITY_FILE_ENV, raising=False)
    fill_sample_store(store_db, collections=1, embeddings_per_collection=5, dimension=4)

    from pgvector_pipeline.definitions import defs

    result = defs.get_job_def(REQUEST_BACKUP_JOB).execute_in_process(
        run_config={**request_run_config(), **resources_config()}, instance=instance
    )

    assert result.success
    materialization = next(
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("langchain_pg_embedding_backup")
    )
    assert materialization.metadata["encrypted"].value is True
    assert materialization.metadata["recipients"].value == key.fingerprint
    assert str(materialization.metadata["path"].value).endswith(".csv.zst.age")
    checks = {
        e.check_name: e
        for e in (
            event.event_specific_data
            for event in result.all_events
            if event.event_type_value == "ASSET_CHECK_EVALUATION"
        )
        if e.asset_key == dg.AssetKey("langchain_pg_embedding_backup")
    }
    assert checks[FILES_CHECK].passed and checks[EMBEDDINGS_CHECK].passed
    sets = LocalBackupStore(backup_root).list_sets()
    assert [(s.status, s.recipients) for s in sets] == [("complete", [key.fingerprint])]
